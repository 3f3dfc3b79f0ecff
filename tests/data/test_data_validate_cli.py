"""`osprey data validate`: every bad record reported with its index and reason, good ones kept."""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from data_fixture_paths import BROKEN, IMAGES, SOURCE_FIXTURES

from osprey.data.cli import add_data_subcommands, main
from osprey.data.parsers import PARSERS, parse_records
from osprey.data.validate import validate_file

# index -> problem, as built by fixtures/make_fixtures.py::broken (0 and 14 are good)
EXPECTED = {
    1: "schema", 2: "conversation", 3: "conversation", 4: "conversation", 5: "mask", 6: "mask", 7: "mask",
    8: "mask", 9: "no_regions", 10: "schema", 11: "image_missing", 12: "image_size", 13: "mask_empty",
    15: "schema", 16: "schema", 17: "mask", 18: "schema", 19: "image_unreadable",
}  # fmt: skip


def test_validate_reports_every_bad_record_and_keeps_the_good(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    kept, report_json = tmp_path / "good.json", tmp_path / "report.json"
    code = main(["validate", str(BROKEN), "--source", "osprey_conversation", "--images", str(IMAGES / "coco"),
                 "--keep-good", str(kept), "--report-json", str(report_json)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "20 records: 2 good, 18 bad" in out
    for index, problem in EXPECTED.items():
        assert f"#{index:<5} {problem}" in out, f"record {index} ({problem}) not reported"
    for problem, n in {"conversation": 3, "mask": 5, "schema": 5, "image_missing": 1}.items():
        assert any(line.split() == [problem, str(n)] for line in out.splitlines())
    as_json = json.loads(report_json.read_text())
    assert as_json["num_bad_records"] == 18 and as_json["counts"]["mask"] == 5
    assert {p["index"]: p["problem"] for p in as_json["problems"]} == EXPECTED
    good = json.loads(kept.read_text())
    assert [r["id"] for r in good] == [9, 10]
    assert (
        main(
            [
                "data",
                "validate",
                str(kept),
                "--source",
                "osprey_conversation",
                "--images",
                str(IMAGES / "coco"),
            ]
        )
        == 0
    )


def test_report_lists_one_reason_per_problem() -> None:
    report, records = validate_file(BROKEN, "osprey_conversation", images=IMAGES / "coco")
    assert len(records) == 20 and report.good_indices == [0, 14]
    assert {p.index: p.problem for p in report.problems} == EXPECTED
    reasons = {p.index: p.reason for p in report.problems}
    assert reasons[8] == "region 2: RLE run lengths add up to 127; expected 3072 (= 48 x 64)"
    assert "declares 100x80" in reasons[12]
    assert sum(report.counts().values()) == len(EXPECTED)
    assert "... 15 more not listed" in report.format(max_listed=3)


def test_without_images_only_image_checks_are_skipped() -> None:
    report, _ = validate_file(BROKEN, "osprey_conversation")
    image_problems = {"image_missing", "image_size", "image_unreadable"}
    assert {p.index: p.problem for p in report.problems} == {
        i: p for i, p in EXPECTED.items() if p not in image_problems
    }


def test_nothing_is_dropped_silently_by_the_parse_loop() -> None:
    parser = PARSERS["osprey_conversation"]
    report = parse_records(parser, parser.load(BROKEN), rng=random.Random(0))
    good_parse = report.num_records - len(report.errors)
    assert len(report.samples) == good_parse and report.num_records == 20
    assert sorted(e.index for e in report.errors) == sorted(
        i
        for i, p in EXPECTED.items()
        if p not in {"image_missing", "image_size", "image_unreadable", "mask_empty"}
    )


@pytest.mark.parametrize("name", sorted(SOURCE_FIXTURES))
def test_every_source_fixture_validates_clean(name: str) -> None:
    path, images = SOURCE_FIXTURES[name]
    report, _ = validate_file(path, name, images=images)
    assert report.ok, report.format()
    assert report.num_samples == report.num_records > 0


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["validate", str(BROKEN), "--source", "nope"]) == 2
    assert main(["validate", str(tmp_path / "missing.json"), "--source", "vg"]) == 2
    assert main(["validate", str(BROKEN)]) == 2  # --source is required
    assert "unknown source 'nope'" in capsys.readouterr().err


def test_unreadable_file_is_bad_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "x.json").write_text("{not json")
    assert main(["validate", str(tmp_path / "x.json"), "--source", "vg"]) == 1
    assert "file error" in capsys.readouterr().out


def test_subcommands_plug_into_a_parent_parser() -> None:
    parser = argparse.ArgumentParser(prog="osprey")
    add_data_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "validate", "f.json", "--source", "vg", "--max-listed", "3"])
    assert args.func.__name__ == "run_validate" and args.max_listed == 3


def test_module_entry_point_and_import_boundaries() -> None:
    code = (
        "import sys, osprey.data.cli, osprey.data.parsers, osprey.data.mixtures, osprey.data.validate;"
        "bad = [m for m in sys.modules if m.startswith(('osprey.model', 'osprey.train', 'matplotlib'))];"
        "assert not bad, bad;"
        "sys.exit(osprey.data.cli.main(['validate', sys.argv[1], '--source', 'vg']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(SOURCE_FIXTURES["vg"][0])], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
