"""Load a model and its tokenizer from a preset name or a checkpoint folder: the one loader that
training, evaluation, inference and serving share."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from osprey.config import PRESETS, OspreyConfig, apply_overrides, get_preset
from osprey.model.cpu_layout import use_column_major_linears
from osprey.model.language_model import tokenizer_for
from osprey.model.osprey import OspreyModel, build_model
from osprey.model.quantize import check_quantize, quantize_model
from osprey.model.weights import from_pretrained, is_official_folder, read_generation_config  # noqa: F401 (re-exported)
from osprey.text.tokenizer import TextTokenizer

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "models" / "osprey-small"


def bundled_available() -> bool:
    """Whether the trained osprey-small weights are installed (docs/osprey-small.md)."""
    return (BUNDLED / "config.json").is_file()


def default_model_spec() -> str:
    """``"bundled"`` when the trained osprey-small is installed, else the random ``"tiny"`` preset."""
    return "bundled" if bundled_available() else "tiny"


# Said once wherever the bundled model answers (CLI, API, web demo): what it knows and what else to load.
BUNDLED_NOTE = ("the bundled osprey-small knows only the synthetic world it was trained on (docs/osprey-small.md); "
                "for real images load Osprey-7B: --model /path/to/Osprey-7b")


def is_bundled(spec: str | Path | None) -> bool:
    """Whether ``spec`` names the bundled osprey-small (``"bundled"`` or its folder)."""
    if spec is None:
        return False
    return str(spec) == "bundled" or Path(spec).resolve() == BUNDLED


def model_label(spec: str | Path) -> str:
    """How records name the model that answered: ``"bundled (osprey-small, FOLDER)"``, ``"tiny (preset,
    random weights)"``, or a checkpoint folder's absolute path."""
    if is_bundled(spec):
        return f"bundled (osprey-small, {BUNDLED})"
    if isinstance(spec, str) and spec in PRESETS:
        return f"{spec} (preset, random weights)"
    return str(Path(spec).resolve())


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): the first CUDA GPU when there is one, else the CPU; otherwise a torch
    device string such as ``cpu``, ``cuda`` or ``cuda:1``, checked to exist here."""
    if spec is None or str(spec) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {str(spec)!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(spec)!r}: this torch build or machine has no CUDA GPU; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(spec)!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    elif device.type != "cpu":
        raise ValueError(f"device {str(spec)!r}: expected auto, cpu, cuda or cuda:N")
    return device


PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # + "auto": osprey.flags


def resolve_precision(spec: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """The inference precision named by ``spec`` (``"auto"``, a name in :data:`PRECISIONS` or a torch
    dtype); None for ``"auto"``/None: as the weights are stored. float16 runs on a GPU only."""
    if spec is None or spec == "auto":
        return None
    dtype = spec if isinstance(spec, torch.dtype) else PRECISIONS.get(str(spec))
    if dtype not in PRECISIONS.values():
        raise ValueError(f"dtype {str(spec)!r}: expected auto or one of {', '.join(PRECISIONS)}")
    if dtype == torch.float16 and device.type != "cuda":
        raise ValueError("dtype float16 runs on a CUDA GPU only; on the CPU use bfloat16 or float32")
    return dtype


def model_folder(spec: str | Path) -> str | Path:
    """``spec`` with ``"bundled"`` resolved to the installed osprey-small folder (a clear error when
    it is not installed); anything else unchanged."""
    if spec == "bundled":
        if not bundled_available():
            raise FileNotFoundError(f"the bundled model is not installed at {BUNDLED}; run scripts/train_small.py --bundle")
        return BUNDLED
    return spec


def load_model(spec: str | Path, *, dtype: str | torch.dtype | None = None, seed: int = 0,
               for_inference: bool = True, device: str | torch.device | None = "cpu",
               merge_adapters: bool = True, overrides: Mapping[str, Any] | None = None,
               quantize: str | None = None,
               ) -> tuple[OspreyModel, TextTokenizer, bool]:
    """(model, tokenizer, is_random_init).

    ``spec``: ``"bundled"`` (the trained osprey-small shipped with the package), a preset name
    (random init of everything the preset does not load from a package) or a model folder.
    ``device``: where the model goes (:func:`resolve_device`; ``"auto"`` picks a GPU when there is one).
    ``for_inference`` (default) re-stores the LLM's weights for fast batched CPU decoding
    (:mod:`osprey.model.cpu_layout`; on the CPU only); pass False for a model that will be trained.
    ``merge_adapters=False`` keeps a folder's LoRA adapters unmerged (a peft LLM, to train them further).
    ``dtype``: the precision to run in: ``"float32"``, ``"bfloat16"``, ``"float16"`` (GPU only) or a
    torch dtype; None or ``"auto"``: as stored (presets and the bundled model: float32; a released
    Osprey checkpoint: its bfloat16). A model folder is read straight into the precision asked for.
    For inference the mask extractor runs in float32 whatever the precision, as the official model
    does (:meth:`OspreyModel.set_precision`).
    ``overrides``: dotted keys of a preset's config set before it is built
    (``{"mask_extractor.shape_encoding": "official"}``); each must be a key of that config.
    ``quantize``: ``"int8"`` or ``"int4"`` (CUDA, bfloat16) stores the LLM's and the projector's
    Linear weights quantized (:mod:`osprey.model.quantize`; inference only); None/``"none"``: as is.
    """
    device = resolve_device(device)
    dtype = resolve_precision(dtype, device)
    quantize = check_quantize(quantize, device)
    if quantize and not for_inference:
        raise ValueError("quantize is for inference; a model to train loads unquantized")
    is_preset = isinstance(spec, str) and spec in PRESETS
    if overrides and not is_preset:
        raise ValueError(f"model overrides apply to presets ({', '.join(PRESETS)}), not to {str(spec)!r}")
    spec = model_folder(spec)
    if is_preset:
        config = get_preset(spec)
        if overrides:
            data = apply_overrides(config.to_dict(), overrides, what=f"override of the {spec!r} preset")
            config = OspreyConfig.from_dict(data)
        torch.manual_seed(seed)
        model = _for_inference(build_model(config).to(device), for_inference)
        return _quantized(_precision(model, dtype, for_inference), quantize), tokenizer_for(config.language_model), True
    model = _for_inference(from_pretrained(spec, dtype=dtype, merge_adapters=merge_adapters).to(device), for_inference)
    model.official_checkpoint = is_official_folder(Path(spec))  # (inference.demo: the official demo's prompt)
    tokenizer = tokenizer_for(model.config.language_model, folder=spec)
    return _quantized(_precision(model, dtype, for_inference), quantize), tokenizer, False


def _quantized(model: OspreyModel, quantize: str | None) -> OspreyModel:
    return quantize_model(model, quantize) if quantize else model


def generation_defaults(model: OspreyModel) -> dict[str, Any]:
    """What :func:`read_generation_config` found in ``model``'s folder ({} for presets), set by
    :func:`osprey.model.weights.from_pretrained`."""
    return dict(getattr(model, "generation_defaults", {}) or {})


def _precision(model: OspreyModel, dtype: torch.dtype | None, inference: bool) -> OspreyModel:
    """``model`` in ``dtype`` (None: as loaded); for inference the mask extractor in float32."""
    if dtype is None and inference:
        dtype = model.language_model.dtype
    return model if dtype is None else model.set_precision(dtype)


def _for_inference(model: OspreyModel, inference: bool) -> OspreyModel:
    """Eval mode, and for inference on CPU the LLM's weights stored the way batched decoding reads
    them fastest (:mod:`osprey.model.cpu_layout`; same values). Training loads with ``for_inference=False``."""
    if inference:
        use_column_major_linears(model.language_model)
    return model.eval()
