"""A seeded synthetic world: scenes of objects with parts, colours, textures, sizes and occlusion.

``generate_scene(seed, config)`` is a pure function of its arguments. A scene uses only 2-3 of the
categories and 2-3 of the colours, so the same colour or the same category elsewhere in the image is
the norm and an answer has to come from the right region's pixels. Some objects are placed to overlap
an earlier one; the later object is drawn on top, the earlier object's mask keeps only its visible
pixels, and no object ever drops under ``min_visibility`` of its own area.

Randomness: the layout uses ``random.Random`` seeded with a string derived from the seed (stable across
Python versions), the pixel noise a separate numpy stream, so neither depends on the other's call count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from osprey.synthetic.raster import ObjectSpec, rasterise_parts, texture_marks, texture_period
from osprey.synthetic.vocabulary import (
    CATEGORIES,
    CATEGORY_NAMES,
    COLOUR_NAMES,
    COLOURS,
    MARKING_DARKNESS,
    SIZE_NAMES,
    SIZES,
    TEXTURES,
)

__all__ = ["ObjectSpec", "Scene", "SceneObject", "ScenePart", "WorldConfig", "generate_scene", "render"]

_NOISE_STREAM = 0x05B7E1  # numpy SeedSequence entropy next to the seed: the pixel-noise stream


@dataclass(frozen=True)
class WorldConfig:
    """What a scene may contain. The defaults are the world the bundled small model learns."""

    image_size: int = 256
    min_objects: int = 3
    max_objects: int = 6
    categories: tuple[str, ...] = CATEGORY_NAMES
    colours: tuple[str, ...] = COLOUR_NAMES
    textures: tuple[str, ...] = TEXTURES
    sizes: tuple[str, ...] = SIZE_NAMES
    categories_per_scene: tuple[int, int] = (2, 3)  # few categories per scene: same-category distractors
    colours_per_scene: tuple[int, int] = (2, 3)  # few colours per scene: same-colour distractors
    occlusion_probability: float = 0.35  # chance that an object is placed over an earlier one
    min_visibility: float = 0.6  # no object loses more than 40 % of its pixels to later ones
    accent_probability: float = 0.25  # chance that the category's accent part gets a second colour
    colour_jitter: int = 12  # +- per RGB channel, per object
    background_levels: tuple[int, int] = (20, 80)  # dark grey, so every palette colour stands out
    noise_amplitude: int = 4  # +- per pixel and channel, uniform
    placement_tries: int = 40

    def __post_init__(self) -> None:
        _check_names("categories", self.categories, CATEGORY_NAMES)
        _check_names("colours", self.colours, COLOUR_NAMES)
        _check_names("textures", self.textures, TEXTURES)
        _check_names("sizes", self.sizes, SIZE_NAMES)
        if self.image_size < 64:
            raise ValueError(f"image_size={self.image_size}: expected at least 64 pixels")
        if not 1 <= self.min_objects <= self.max_objects <= 99:
            raise ValueError(
                f"objects {self.min_objects}..{self.max_objects}: expected 1 <= min <= max <= 99"
            )
        for name in ("categories_per_scene", "colours_per_scene", "background_levels"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name}={(lo, hi)}: expected 0 <= low <= high")
        if self.categories_per_scene[0] < 1 or self.colours_per_scene[0] < 1:
            raise ValueError("categories_per_scene and colours_per_scene must allow at least one name")
        for name in ("occlusion_probability", "accent_probability", "min_visibility"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)}: expected a value in [0, 1]")

    @property
    def texture_period(self) -> int:
        return texture_period(self.image_size)


def _check_names(what: str, names: tuple[str, ...], known: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"{what}={names}: expected a non-empty subset of {known}")


@dataclass(frozen=True, eq=False)
class ScenePart:
    """One named part of an object, as it is visible in the image."""

    name: str
    colour: str
    texture: str
    mask: np.ndarray  # (H, W) bool: the part's visible pixels
    area: int  # visible pixels
    full_area: int  # pixels before occlusion
    marked_pixels: int  # visible pixels covered by stripes/dots

    @property
    def visibility(self) -> float:
        return self.area / self.full_area if self.full_area else 0.0


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One object: its attributes, its visible instance mask and its parts (drawing order)."""

    id: int  # 1-based position in drawing order; later ids are drawn on top
    spec: ObjectSpec
    mask: np.ndarray  # (H, W) bool: the visible pixels (occluders removed)
    full_area: int  # pixels before occlusion
    parts: tuple[ScenePart, ...]  # every part of the category, including fully hidden ones
    occluded_by: tuple[int, ...]  # ids of later objects that cover some of its pixels
    marked_pixels: int  # visible pixels covered by stripes/dots
    bbox: tuple[int, int, int, int]  # (x, y, w, h) of the visible mask
    area: int
    centroid: tuple[float, float]  # (x, y) of the visible mask

    @property
    def category(self) -> str:
        return self.spec.category

    @property
    def colour(self) -> str:
        return self.spec.colour

    @property
    def texture(self) -> str:
        return self.spec.texture

    @property
    def size(self) -> str:
        return self.spec.size

    @property
    def visibility(self) -> float:
        return self.area / self.full_area

    @property
    def colour_share(self) -> float:
        """Fraction of the visible pixels painted in the object's colour (markings included)."""
        accent = sum(p.area for p in self.parts if p.colour != self.colour)
        return 1.0 - accent / self.area

    def part(self, name: str) -> ScenePart:
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(f"{self.category} has no part {name!r}; parts are {[p.name for p in self.parts]}")

    @property
    def visible_parts(self) -> tuple[ScenePart, ...]:
        return tuple(p for p in self.parts if p.area > 0)


@dataclass(frozen=True, eq=False)
class Scene:
    seed: int
    config: WorldConfig
    background: tuple[int, int, int]
    objects: tuple[SceneObject, ...]
    image: np.ndarray = field(repr=False)  # (H, W, 3) uint8, == render(self)
    instance_map: np.ndarray = field(repr=False)  # (H, W) uint8: 0 = background, k = object id k

    @property
    def height(self) -> int:
        return self.config.image_size

    @property
    def width(self) -> int:
        return self.config.image_size

    @property
    def specs(self) -> tuple[ObjectSpec, ...]:
        return tuple(o.spec for o in self.objects)

    def object(self, object_id: int) -> SceneObject:
        return self.objects[object_id - 1]


# --------------------------------------------------------------------------------------------- layout


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def _object_dims(category: str, size: str, rng: random.Random, image_size: int) -> tuple[int, int]:
    """(width, height) in pixels: the longer side is the size band's fraction of the image."""
    lo, hi = SIZES[size]
    longest = rng.uniform(lo, hi) * image_size
    aspect = CATEGORIES[category].aspect
    width, height = (longest, longest / aspect) if aspect >= 1.0 else (longest * aspect, longest)
    return max(3, round(width)), max(3, round(height))


def _cycle_then_random(rng: random.Random, names: list[str], n: int) -> list[str]:
    """``n`` names: each of ``names`` once (if n allows), the rest drawn at random; shuffled."""
    picks = names[:n] + [rng.choice(names) for _ in range(n - len(names))]
    rng.shuffle(picks)
    return picks


def _sample_look(rng: random.Random, config: WorldConfig, category: str, colour: str) -> dict:
    """Texture, size, flip, jittered colour and accent of one object (everything but its position)."""
    look = {
        "category": category,
        "colour": colour,
        "texture": rng.choice(config.textures),
        "size": rng.choice(config.sizes),
        "flip": rng.random() < 0.5,
        "rgb": _jitter(COLOURS[colour], rng, config.colour_jitter),
    }
    accent = CATEGORIES[category].accent_part
    others = [c for c in config.colours if c != colour]
    if accent and others and rng.random() < config.accent_probability:
        accent_colour = rng.choice(others)
        look.update(
            accent_part=accent,
            accent_colour=accent_colour,
            accent_rgb=_jitter(COLOURS[accent_colour], rng, config.colour_jitter),
        )
    return look


def _propose_box(
    rng: random.Random, size: tuple[int, int], placed: list[ObjectSpec], overlap: bool, image_size: int
) -> tuple[int, int] | None:
    """Top-left corner for a (w, h) box: next to and over an earlier box if ``overlap``, else anywhere free."""
    w, h = size
    if overlap and placed:
        target = rng.choice(placed)
        tcx, tcy = target.x0 + target.width / 2, target.y0 + target.height / 2
        # Shift far along one axis (a partial overlap, never a full cover), little along the other.
        far = rng.uniform(0.4, 0.75) * rng.choice((-1, 1))
        near = rng.uniform(-0.5, 0.5)
        fx, fy = (far, near) if rng.random() < 0.5 else (near, far)
        x0 = round(tcx + fx * (target.width + w) / 2 - w / 2)
        y0 = round(tcy + fy * (target.height + h) / 2 - h / 2)
        if x0 < 0 or y0 < 0 or x0 + w > image_size or y0 + h > image_size:
            return None
        return x0, y0
    x0, y0 = rng.randint(0, image_size - w), rng.randint(0, image_size - h)
    gap = 2
    for p in placed:
        if (
            x0 < p.x0 + p.width + gap
            and p.x0 < x0 + w + gap
            and y0 < p.y0 + p.height + gap
            and p.y0 < y0 + h + gap
        ):
            return None
    return x0, y0


_PART_SLOTS = 8  # part labels per object in the placement bookkeeping (categories have at most 3 parts)
KEY_PART_VISIBILITY = 0.5  # an object's largest part (its silhouette) always stays at least half visible


def _place_objects(rng: random.Random, config: WorldConfig) -> list[ObjectSpec]:
    """Choose and place the objects.

    A placement is refused when it would leave an earlier object under ``min_visibility`` of its area,
    or its largest part under ``KEY_PART_VISIBILITY`` (a tree without its crown is not a tree).
    """
    size = config.image_size
    n_objects = rng.randint(config.min_objects, config.max_objects)
    cats = rng.sample(
        config.categories, min(len(config.categories), rng.randint(*config.categories_per_scene))
    )
    cols = rng.sample(config.colours, min(len(config.colours), rng.randint(*config.colours_per_scene)))
    # Top-most (object index + 1) * _PART_SLOTS + part label per pixel; 0 = background.
    owner = np.zeros((size, size), dtype=np.uint16)
    visible = np.zeros((0, _PART_SLOTS), dtype=np.int64)  # (placed, slots) visible pixels per part
    full = np.zeros((0, _PART_SLOTS), dtype=np.int64)  # (placed, slots) pixels per part before occlusion
    placed: list[ObjectSpec] = []
    smallest = min(config.sizes, key=lambda s: SIZES[s][0])
    categories = _cycle_then_random(rng, cats, n_objects)
    colours = _cycle_then_random(rng, cols, n_objects)
    for category, colour in zip(categories, colours):
        look = _sample_look(rng, config, category, colour)
        overlap = bool(placed) and rng.random() < config.occlusion_probability
        for attempt in range(config.placement_tries):
            if attempt == config.placement_tries // 2:
                look["size"] = smallest  # crowded scene: shrink, and accept any overlap that keeps visibility
                overlap = True
            dims = _object_dims(look["category"], look["size"], rng, size)
            corner = _propose_box(rng, dims, placed, overlap, size)
            if corner is None:
                continue
            spec = ObjectSpec(x0=corner[0], y0=corner[1], width=dims[0], height=dims[1], **look)
            labels = rasterise_parts(spec)
            window = owner[spec.y0 : spec.y0 + spec.height, spec.x0 : spec.x0 + spec.width]
            inside = labels > 0
            lost = np.bincount(window[inside], minlength=(len(placed) + 1) * _PART_SLOTS)
            left = visible - lost.reshape(-1, _PART_SLOTS)[1:]  # (placed, slots)
            if (left.sum(1) < config.min_visibility * full.sum(1)).any():
                continue
            key = full.argmax(1)
            rows = np.arange(len(placed))
            if (left[rows, key] < KEY_PART_VISIBILITY * full[rows, key]).any():
                continue
            window[inside] = (len(placed) + 1) * _PART_SLOTS + labels[inside]
            counts = np.bincount(labels[inside], minlength=_PART_SLOTS)[None]
            visible = np.concatenate([left, counts])
            full = np.concatenate([full, counts])
            placed.append(spec)
            break
    return placed


# ------------------------------------------------------------------------------------- masks, render


def _compose(specs: list[ObjectSpec], size: int) -> np.ndarray:
    """(H, W) uint8 instance map: 0 = background, k = object k (the top-most one where objects overlap)."""
    instances = np.zeros((size, size), dtype=np.uint8)
    for k, spec in enumerate(specs, start=1):
        labels = rasterise_parts(spec)
        instances[spec.y0 : spec.y0 + spec.height, spec.x0 : spec.x0 + spec.width][labels > 0] = k
    return instances


def _build_object(k: int, spec: ObjectSpec, instances: np.ndarray, period: int) -> SceneObject:
    x0, y0, x1, y1 = spec.box
    labels = rasterise_parts(spec)
    mask = instances == k
    local_mask = mask[y0:y1, x0:x1]
    marks = texture_marks(spec.texture, spec.height, spec.width, period)
    shape = CATEGORIES[spec.category]
    scene_parts = []
    for label, part in enumerate(shape.parts, start=1):
        textured = spec.part_texture(part.name) != "solid"
        # A part's visible pixels: its own labels where object k is the top-most object.
        local_part = local_mask & (labels == label)
        part_mask = np.zeros_like(mask)
        part_mask[y0:y1, x0:x1] = local_part
        scene_parts.append(
            ScenePart(
                name=part.name,
                colour=spec.part_colour(part.name),
                texture=spec.part_texture(part.name),
                mask=part_mask,
                area=int(local_part.sum()),
                full_area=int((labels == label).sum()),
                marked_pixels=int((local_part & marks).sum()) if textured else 0,
            )
        )
    ys, xs = np.nonzero(local_mask)
    area = int(xs.size)
    occluders = np.unique(instances[y0:y1, x0:x1][(labels > 0) & ~local_mask])
    return SceneObject(
        id=k,
        spec=spec,
        mask=mask,
        full_area=int((labels > 0).sum()),
        parts=tuple(scene_parts),
        occluded_by=tuple(int(o) for o in occluders if o > k),
        marked_pixels=sum(p.marked_pixels for p in scene_parts),
        bbox=(
            x0 + int(xs.min()),
            y0 + int(ys.min()),
            int(xs.max() - xs.min()) + 1,
            int(ys.max() - ys.min()) + 1,
        ),
        area=area,
        centroid=(x0 + float(xs.mean()) + 0.5, y0 + float(ys.mean()) + 0.5),
    )


def _paint(specs: tuple[ObjectSpec, ...], background: tuple[int, int, int], seed: int, config: WorldConfig):
    """(H, W, 3) uint8: background, the objects in drawing order with their textures, then pixel noise."""
    size = config.image_size
    image = np.empty((size, size, 3), dtype=np.int16)
    image[:] = background
    for spec in specs:
        labels = rasterise_parts(spec)
        window = image[spec.y0 : spec.y0 + spec.height, spec.x0 : spec.x0 + spec.width]
        for label, part in enumerate(CATEGORIES[spec.category].parts, start=1):
            is_accent = part.name == spec.accent_part and spec.accent_rgb is not None
            window[labels == label] = spec.accent_rgb if is_accent else spec.rgb
        if spec.texture != "solid":
            marked = texture_marks(spec.texture, spec.height, spec.width, config.texture_period) & (
                labels > 0
            )
            if spec.accent_rgb is not None:
                accent_label = CATEGORIES[spec.category].part_names.index(spec.accent_part) + 1
                marked &= labels != accent_label
            window[marked] = [round(c * MARKING_DARKNESS) for c in spec.rgb]
    if config.noise_amplitude:
        rng = np.random.default_rng([_NOISE_STREAM, seed])
        image += rng.integers(
            -config.noise_amplitude, config.noise_amplitude + 1, size=image.shape, dtype=np.int16
        )
    return np.clip(image, 0, 255).astype(np.uint8)


def render(scene: Scene) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of a scene; a pure function of its layout and seed (== ``scene.image``)."""
    return _paint(scene.specs, scene.background, scene.seed, scene.config)


def generate_scene(seed: int, config: WorldConfig | None = None) -> Scene:
    """The scene for ``seed``: same seed and config, same scene, pixel for pixel."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative integer")
    seed = int(seed)
    config = config or WorldConfig()
    rng = random.Random(f"osprey-synthetic-world:{seed}")
    level = rng.randint(*config.background_levels)
    background = tuple(min(255, max(0, level + rng.randint(-6, 6))) for _ in range(3))
    specs = _place_objects(rng, config)
    instances = _compose(specs, config.image_size)
    objects = tuple(
        _build_object(k, spec, instances, config.texture_period) for k, spec in enumerate(specs, start=1)
    )
    image = _paint(tuple(specs), background, seed, config)  # type: ignore[arg-type]
    instances.flags.writeable = False
    image.flags.writeable = False
    return Scene(
        seed=seed,
        config=config,
        background=background,  # type: ignore[arg-type]
        objects=objects,
        image=image,
        instance_map=instances,
    )
