"""``import osprey`` for inference stays light: no gradio, deepspeed, segment_anything or training."""

from __future__ import annotations

import subprocess
import sys


def test_inference_imports_do_not_pull_heavy_or_training_modules() -> None:
    code = (
        "import sys, osprey, osprey.model, osprey.inference.predictor, osprey.parity\n"
        "bad = [m for m in ('gradio', 'deepspeed', 'segment_anything', 'osprey.train')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_torchvision_imports_beside_cpu_torch() -> None:
    code = "import osprey, torchvision, timm, open_clip; from torchvision.ops import roi_align; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "ok"


def test_front_door_exports_lazily() -> None:
    code = (
        "import sys, osprey\n"
        "early = [m for m in ('osprey.config', 'osprey.model', 'osprey.inference', 'transformers') if m in sys.modules]\n"
        "from osprey.config import OspreyConfig\n"
        "from osprey.inference.predictor import Query, RegionPredictor\n"
        "from osprey.model.loading import load_model\n"
        "same = (osprey.load_model is load_model and osprey.RegionPredictor is RegionPredictor\n"
        "        and osprey.Query is Query and osprey.OspreyConfig is OspreyConfig)\n"
        "listed = set(osprey.__all__) == {'load_model', 'RegionPredictor', 'Query', 'OspreyConfig'} <= set(dir(osprey))\n"
        "try:\n"
        "    osprey.no_such_name\n"
        "    missing = 'no error'\n"
        "except AttributeError as err:\n"
        "    missing = str(err)\n"
        "print(','.join(early), same, listed, missing, sep='|')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "|True|True|module 'osprey' has no attribute 'no_such_name'"


def test_known_library_noise_is_dropped_and_nothing_else() -> None:
    import logging

    import osprey  # noqa: F401  (installs the filters)

    torchao, pytree = logging.getLogger("torchao"), logging.getLogger("torch.utils._pytree")

    def kept(logger: logging.Logger, message: str) -> bool:
        record = logger.makeRecord(logger.name, logging.WARNING, __file__, 0, message, (), None)
        return all(f.filter(record) for f in logger.filters)

    assert not kept(torchao, "Failed to load /x/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: Could not load")
    assert not kept(torchao, "Failed to load /x/torchao/_C_cutlass_90a.abi3.so: Could not load this library")
    assert kept(torchao, "Failed to load /x/torchao/_C.abi3.so: Could not load")  # a needed extension: kept
    assert kept(torchao, "some other torchao warning")
    assert not kept(pytree, "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by ...")
    assert kept(pytree, "another pytree message")
