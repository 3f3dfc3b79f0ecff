"""Every task end to end through ``osprey eval`` on fixture files, tiny preset (random weights)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from osprey.cli import main

FAST = ["--max-new-tokens", "2", "--no-progress"]


def run_eval(tmp_path, task, *args):
    out = tmp_path / task
    assert main(["eval", task, "--model", "tiny", "--out", str(out), *FAST, *args]) == 0
    for name in ("predictions.jsonl", "metrics.json", "results.md"):
        assert (out / name).exists(), name
    lines = (out / "predictions.jsonl").read_text().splitlines()
    metrics = json.loads((out / "metrics.json").read_text())
    return lines, metrics


@pytest.mark.parametrize(("task", "data", "count", "keys"), [
    ("lvis", "lvis_val_1k_category.json", "objects", ("SS", "S-IoU")),
    ("paco", "paco_val_1k_category.json", "objects", ("SS", "S-IoU")),
    ("pope", "coco_pope_random.json", "questions", ("accuracy", "F1", "yes_ratio")),
    ("cityscapes", "cityscapes_panoptic_val.json", "segments", ("PQ", "AP", "mIoU")),
    pytest.param("ade20k", "ade20k_panoptic_val.json", "segments", ("PQ", "AP", "mIoU"), marks=pytest.mark.slow),
])
def test_task_writes_its_outputs(tmp_path, eval_fixtures, task, data, count, keys):
    lines, metrics = run_eval(tmp_path, task, "--data", str(eval_fixtures / data),
                              "--images", str(eval_fixtures / "images"))
    assert metrics["metrics"][count] == len(lines) > 0
    for key in keys:
        assert key in metrics["metrics"]
    assert metrics["random_init"] is True and metrics["decoding"] == "greedy"


def test_rerun_gives_identical_numbers(tmp_path, eval_fixtures):
    args = ("--data", str(eval_fixtures / "lvis_val_1k_category.json"), "--images", str(eval_fixtures / "images"))
    lines1, m1 = run_eval(tmp_path / "a", "lvis", *args)
    lines2, m2 = run_eval(tmp_path / "b", "lvis", *args, "--batch-size", "1")
    assert m1["metrics"] == m2["metrics"]
    assert [json.loads(x)["answer"] for x in lines1] == [json.loads(x)["answer"] for x in lines2]


@pytest.mark.slow  # two JVM starts (PTB tokenizer, METEOR); the metric itself is tested in test_caption_metrics
def test_refcocog_captions(tmp_path, eval_fixtures):
    lines, metrics = run_eval(tmp_path, "refcocog", "--data", str(eval_fixtures / "finetune_refcocog_val_with_mask.json"),
                              "--images", str(eval_fixtures / "images"), "--limit", "3")
    assert metrics["metrics"]["regions"] == len(lines) == 3
    assert metrics["metrics"]["SPICE"] is None and "SPICE skipped" in metrics["metrics"]["note"]


def test_synthetic_benchmark(tmp_path, capsys):
    lines, metrics = run_eval(tmp_path, "synthetic", "--seed", "3", "--images", "2", "--batch-size", "64")
    out = capsys.readouterr().out
    result = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(result) == 1
    fields = dict(kv.split("=") for kv in result[0].split()[1:])
    assert list(fields) == ["category", "colour", "part", "yesno", "relation", "cider", "describe_recall",
                            "describe_precision", "texture", "size", "position", "heldout_wording"]
    assert "with distractors" in (tmp_path / "synthetic" / "results.md").read_text()
    records = [json.loads(x) for x in lines]
    assert {r["type"] for r in records} >= {"pos_neg", "part_name", "short_caption", "description", "left_of"}
    assert metrics["zero_regions"] is False
    described = [r for r in records if r["type"] == "description"]
    assert described and all("recall" in r and "wrong" in r for r in described)
    assert metrics["metrics"]["describe"]["descriptions"] == len(described)
    heldout = [r for r in records if r["key"].split("-")[1] == "heldout"]
    assert len(heldout) == metrics["metrics"]["heldout_wording"]["questions"] > 20
    assert float(fields["heldout_wording"]) == pytest.approx(sum(r["correct"] for r in heldout) / len(heldout))


@pytest.mark.slow
def test_synthetic_zero_region_ablation(tmp_path):
    _, ablation = run_eval(tmp_path, "synthetic", "--seed", "3", "--images", "2", "--batch-size", "64",
                           "--zero-regions")
    assert ablation["zero_regions"] is True


class _Judge(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self):  # an OpenAI-compatible /chat/completions that always answers "8 6"
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "8 6\nfine"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_judged_description_with_a_local_judge(tmp_path, eval_fixtures):
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        d = eval_fixtures / "description"
        args = ("--data", str(d / "questions.json"), "--contexts", str(d / "prompt.json"),
                "--references", str(d / "answers.json"), "--images", str(eval_fixtures / "images"),
                "--judge-url", f"http://127.0.0.1:{server.server_port}/v1", "--judge-model", "judge")
        _, metrics = run_eval(tmp_path, "description", *args)
        assert metrics["metrics"]["score"] == pytest.approx(75.0)  # 6 / 8
        calls = _Judge.calls
        run_eval(tmp_path, "description", *args)  # same out dir: replies come from the cache
        assert _Judge.calls == calls
    finally:
        server.shutdown()
