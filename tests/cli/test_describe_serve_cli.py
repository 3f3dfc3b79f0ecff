"""``osprey describe`` with clicks and segment-everything, ``osprey chat`` fed through stdin, ``serve --help``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osprey.cli import main
from osprey.masks import decode_rle


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    image = np.full((48, 64, 3), 30, dtype=np.uint8)
    image[10:30, 10:30] = [200, 30, 30]
    path = tmp_path / "picture.png"
    Image.fromarray(image).save(path)
    return path


def test_describe_a_click_and_everything(tmp_path: Path, picture: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["describe", str(picture), "--model", "tiny", "--point", "20,20", "--everything", "--detailed",
                 "--out", str(out), "--max-new-tokens", "3"]) == 0
    record = json.loads((out / "answers.json").read_text())
    assert record["random_init"] is True and record["provider"] == "grabcut" and record["question"] == "detailed"
    assert record["device"] in ("cpu", "cuda:0")
    clicked = decode_rle(record["regions"][0]["rle"], 48, 64)
    assert clicked[20, 20] and clicked.sum() == 400  # exactly the red square
    areas = [r["area"] for r in record["regions"][1:]]
    assert len(areas) >= 2 and areas == sorted(areas, reverse=True)
    assert (out / "overlay.png").exists()
    captured = capsys.readouterr()
    assert "region 1:" in captured.out and "RANDOM weights" in captured.err


def test_describe_refuses_slot_tokens_and_bad_points(picture: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="'<mask>'"):
        main(["describe", str(picture), "--model", "tiny", "--point", "5,5", "--question", "What is <mask>?", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="outside"):
        main(["describe", str(picture), "--model", "tiny", "--point", "500,5", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="x,y"):
        main(["describe", str(picture), "--model", "tiny", "--point", "5", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["describe", str(picture), "--model", "tiny", "--point", "5,5", "--sam", str(tmp_path / "none.pth")])


def test_chat_repl_reads_questions_from_stdin(picture: Path, monkeypatch, capsys) -> None:
    lines = "/regions\nWhat is <region1>?\nWhat is <mask>?\nAnd <region3>?\n/reset\nIs <region2> round?\n/quit\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert main(["chat", str(picture), "--model", "tiny", "--box", "10,10,30,30", "--point", "50,40", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "2 region(s)" in out and "<region1>: 400 px" in out
    assert "error:" in out and "'<mask>'" in out and "<region3> but 2 region(s)" in out
    assert "(history cleared)" in out


def test_serve_help_names_the_safety_flags(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in ("--host", "--token", "--sam", "--ui", "--queue-size"):
        assert flag in out


def test_device_flag_picks_or_refuses_a_device(picture: Path, tmp_path: Path) -> None:
    import torch

    from osprey.model.loading import load_model, resolve_device

    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("tpu", "gpu0", "cuda:99"):
        with pytest.raises(ValueError, match=f"device '{bad}'"):
            resolve_device(bad)
    model, _, _ = load_model("tiny", device="cpu")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    with pytest.raises(SystemExit, match="device 'tpu'"):
        main(["describe", str(picture), "--model", "tiny", "--box", "10,10,30,30", "--device", "tpu",
              "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="device 'tpu'"):
        main(["eval", "synthetic", "--model", "tiny", "--device", "tpu", "--images", "1", "--out", str(tmp_path)])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA GPU"):
            main(["describe", str(picture), "--model", "tiny", "--box", "10,10,30,30", "--device", "cuda",
                  "--out", str(tmp_path)])


def test_dtype_flag_runs_in_bfloat16_with_a_float32_extractor(picture: Path, tmp_path: Path, capsys) -> None:
    import torch

    from osprey.model.loading import load_model, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is None and resolve_precision(None, cpu) is None  # as stored
    assert resolve_precision("float32", cpu) == torch.float32
    assert resolve_precision("bfloat16", cpu) == torch.bfloat16 == resolve_precision(torch.bfloat16, cpu)
    with pytest.raises(ValueError, match="dtype 'float8'"):
        resolve_precision("float8", cpu)
    with pytest.raises(ValueError, match="float16 runs on a CUDA GPU only"):
        resolve_precision("float16", cpu)
    model, _, _ = load_model("tiny", device="cpu", dtype="bfloat16")
    assert model.language_model.dtype == torch.bfloat16
    assert {p.dtype for p in model.projector.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.mask_extractor.parameters()} == {torch.float32}
    out = tmp_path / "bf16"
    assert main(["describe", str(picture), "--model", "tiny", "--box", "10,10,30,30", "--dtype", "bfloat16",
                 "--max-new-tokens", "3", "--out", str(out)]) == 0
    record = json.loads((out / "answers.json").read_text())
    assert record["dtype"] == "bfloat16" and len(record["regions"]) == 1
    assert "region 1:" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="float16 runs on a CUDA GPU only"):
        main(["describe", str(picture), "--model", "tiny", "--box", "10,10,30,30", "--dtype", "float16",
              "--device", "cpu", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="float16 runs on a CUDA GPU only"):
        main(["eval", "synthetic", "--model", "tiny", "--dtype", "float16", "--device", "cpu", "--images", "1",
              "--out", str(tmp_path)])


def test_auto_precision_keeps_stored_bfloat16_and_runs_the_extractor_in_float32(tmp_path: Path) -> None:
    """A folder stored in bfloat16 (as the released Osprey-7B is) runs in bfloat16 with a float32
    mask extractor, as the official model does; loaded for training it stays as stored."""
    import torch

    from osprey.model.loading import load_model
    from osprey.model.weights import save_pretrained

    model, _, _ = load_model("tiny", device="cpu", for_inference=False)
    save_pretrained(model.to(torch.bfloat16), tmp_path / "bf16")
    loaded, _, _ = load_model(tmp_path / "bf16")
    assert loaded.language_model.dtype == torch.bfloat16
    assert {p.dtype for p in loaded.mask_extractor.parameters()} == {torch.float32}
    for_training, _, _ = load_model(tmp_path / "bf16", for_inference=False)
    assert {p.dtype for p in for_training.mask_extractor.parameters()} == {torch.bfloat16}
    default, _, _ = load_model("tiny", device="cpu")  # a float32 preset stays float32 throughout
    assert {p.dtype for p in default.parameters()} == {torch.float32}


def test_serve_flags_fill_the_settings(tmp_path: Path) -> None:
    from osprey.cli import build_parser
    from osprey.serve.cli import settings_from
    from osprey.serve.settings import ServeSettings

    def settings(*flags: str) -> ServeSettings:
        return settings_from(build_parser().parse_args(["serve", *flags]))

    assert settings() == ServeSettings()
    (tmp_path / "token").write_text("s3cret\n")
    given = settings("--host", "0.0.0.0", "--port", "9", "--model", "tiny", "--device", "cpu", "--dtype", "bfloat16",
                     "--sam", "s.pth", "--sam-type", "vit_t", "--token-file", str(tmp_path / "token"), "--ui",
                     "--queue-size", "2", "--timeout", "3", "--max-body-mb", "1", "--max-regions", "4",
                     "--max-new-tokens", "64")
    assert given == ServeSettings(model="tiny", host="0.0.0.0", port=9, token="s3cret", sam_checkpoint=Path("s.pth"),
                                  sam_type="vit_t", device="cpu", dtype="bfloat16", ui=True, queue_size=2,
                                  request_timeout_s=3.0, max_body_bytes=1024 * 1024, max_regions=4, max_new_tokens=64,
                                  default_new_tokens=64)
