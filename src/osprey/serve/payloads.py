"""What clients send, one parser per route: the JSON body in, a frozen, checked request out.

    request = parse_describe(body, settings)     # DescribeRequest, or BadRequest naming the bad value

Each request dataclass is also the one description of its body: every field names (in its
metadata) the body keys it is parsed from, with their JSON schemas, and :func:`request_schema`
builds the OpenAPI ``requestBody`` from that. Region specs stay specs here: boxes and clicks need
the mask provider, so :func:`osprey.serve.decoding.decode_regions` turns them into masks on the
model worker.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image

from osprey import masks as mask_io
from osprey.inference.predictor import QUESTIONS, RESERVED, check_question, question_text
from osprey.model.generation import DecodingOptions, sampling_values
from osprey.serve.decoding import MAX_POINTS, check_specs, decode_image
from osprey.serve.demo_style import DEMO_STYLE, demo_style_field
from osprey.serve.http import BadRequest
from osprey.serve.settings import ServeSettings
from osprey.text.conversation import Turn

REGION_SPECS = ("region specs: {'size','counts'} RLE, {'rle': ...}, {'polygons': [[x,y,...]]}, {'png': base64}, "
                "{'box': [x0,y0,x1,y1], 'segment': bool}, {'point': [x,y]} or {'points': [[x,y],...], "
                "'labels': [1,0,...]}")
REGIONS = {"type": "array", "items": {}, "description": REGION_SPECS}
IMAGE = {"type": "string", "description": "base64 image bytes or a data: URL (never a path or http URL)"}
INTEGER, NUMBER, STRING, BOOLEAN = ({"type": t} for t in ("integer", "number", "string", "boolean"))
POINT = {"type": "array", "items": NUMBER, "minItems": 2, "maxItems": 2}
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 2.0
MULTIPART = {"image": {"type": "string", "format": "binary"}, "regions": {"type": "string", "description": "JSON list"}}


def wire(*, required: bool = False, **keys: dict) -> dict:
    """Field metadata: the body ``keys`` (name -> JSON schema) a request field is parsed from."""
    return {"body": keys, "required": required}


def request_schema(request: type, *, multipart: bool = False) -> dict:
    """The OpenAPI ``requestBody`` of a route, from its request dataclass's body keys."""
    properties: dict[str, dict] = {}
    required: list[str] = []
    for item in fields(request):
        keys = item.metadata.get("body", {})
        properties.update(keys)
        required += list(keys) if item.metadata.get("required") else []
    schema = {"title": request.__name__, "description": " ".join((request.__doc__ or "").split()),
              "type": "object", "properties": properties, "required": required}
    content = {"application/json": {"schema": schema}}
    if multipart:
        form = {key: MULTIPART.get(key, value) for key, value in properties.items()}
        content["multipart/form-data"] = {"schema": {**schema, "properties": form}}
    return {"requestBody": {"required": True, "content": content}}


# ------------------------------------------------------------------------------------ shared checks


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def flag(body: Mapping, key: str, default: bool = False) -> bool:
    """A real JSON boolean (``"false"``, ``0`` or an object are refused, not read as truthy)."""
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{key} is {_short(value)}; expected true or false", param=key)
    return value


def text_field(body: Mapping, key: str, limit: int) -> str | None:
    """A string of at most ``limit`` characters, or None when absent."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} is a {type(value).__name__}; expected a string", param=key)
    if len(value) > limit:
        raise BadRequest(f"{key} is {len(value)} characters; at most {limit} are allowed", status=413, param=key)
    return value


def integer(value: Any, name: str, low: int, high: int) -> int:
    if not _is_int(value) or not low <= value <= high:
        raise BadRequest(f"{name} is {_short(value)}; expected an integer in {low}..{high}", param=name)
    return value


def decoding_options(settings: ServeSettings, max_new_tokens: Any = None, temperature: Any = None,
                     top_p: Any = None, seed: Any = None, *, tokens_key: str = "max_tokens",
                     generation_config: Mapping[str, Any] | None = None) -> DecodingOptions:
    """How to decode: greedy unless ``temperature > 0``; at most ``settings.max_new_tokens`` tokens.
    ``temperature`` is 0 (greedy) or in [0.01, 2]; ``top_p`` in (0, 1]; ``seed`` a signed 64-bit int.
    When sampling, what the request leaves out (``top_p``; ``top_k``, which OpenAI's API has not)
    comes from the model's ``generation_config`` as the official ``generate`` takes it, else
    transformers' defaults (top_p 1.0, top_k 50): :func:`osprey.model.generation.sampling_values`."""
    tokens = settings.default_new_tokens if max_new_tokens is None else max_new_tokens
    if not _is_int(tokens) or not 1 <= tokens <= settings.max_new_tokens:
        raise BadRequest(f"{tokens_key} is {_short(tokens)}; expected an integer in 1..{settings.max_new_tokens}",
                         param=tokens_key)
    if temperature is not None and (not _is_number(temperature) or not (
            temperature == 0 or MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE)):
        raise BadRequest(f"temperature is {_short(temperature)}; expected 0 (greedy) or a number in "
                         f"{MIN_TEMPERATURE:g}..{MAX_TEMPERATURE:g}", param="temperature")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise BadRequest(f"top_p is {_short(top_p)}; expected a number in (0, 1]", param="top_p")
    if seed is not None:
        integer(seed, "seed", -(2**63), 2**63 - 1)
    sample = temperature is not None and temperature > 0
    if not sample:
        return DecodingOptions(max_new_tokens=tokens, top_p=float(top_p) if top_p is not None else 1.0, seed=seed)
    values = sampling_values(generation_config, temperature=float(temperature),
                             top_p=None if top_p is None else float(top_p))
    return DecodingOptions(max_new_tokens=tokens, do_sample=True, seed=seed, **values)


def check_region_list(specs: Any, max_regions: int, image: Image.Image | None = None,
                      settings: ServeSettings | None = None) -> tuple[Any, ...]:
    """The client's region specs, if they are a list of at most ``max_regions``; with ``image``,
    each spec is checked against its size (:func:`osprey.serve.decoding.check_specs`) and the masks'
    total pixels against ``settings.max_mask_pixels``."""
    if specs is None:
        return ()
    if not isinstance(specs, list):
        raise BadRequest(f"regions is a {type(specs).__name__}; expected a list of region specs", param="regions")
    if specs and all(isinstance(v, int | float) and not isinstance(v, bool) for v in specs):
        raise BadRequest(f"regions is a flat list of {len(specs)} numbers; expected a list of region specs, e.g. "
                         "[{'polygons': [[x1, y1, x2, y2, ...]]}] or [{'box': [x0, y0, x1, y1]}]", param="regions")
    if len(specs) > max_regions:
        raise BadRequest(f"{len(specs)} regions given; at most {max_regions} per request are allowed",
                         param="regions")
    if image is not None and settings is not None:
        pixels = len(specs) * image.width * image.height
        if pixels > settings.max_mask_pixels:
            raise BadRequest(f"{len(specs)} regions of a {image.width}x{image.height} image are {pixels} mask "
                             f"pixels; at most {settings.max_mask_pixels} are allowed (fewer regions or a "
                             "smaller image)", status=413, param="regions")
        check_specs(specs, image.height, image.width)
    return tuple(specs)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_text(text: Any, num_regions: int, what: str = "question", param: str | None = None) -> str:
    """The text, if it names only regions that exist and holds no reserved slot token
    (:func:`osprey.inference.predictor.check_question`, as a 400)."""
    try:
        return check_question(text, num_regions, what)
    except ValueError as err:
        raise BadRequest(str(err), param=param or what) from None


def check_turns(turns: Sequence[Turn], num_regions: int) -> None:
    for k, turn in enumerate(turns):
        if turn.role == "user":
            check_text(turn.text, num_regions, f"message {k + 1}", "messages")
        elif RESERVED.search(turn.text):
            raise BadRequest(f"assistant message {k + 1} contains {RESERVED.search(turn.text).group(0)!r}; "
                             "slot tokens cannot appear in text", param="messages")


def _image(body: Mapping, settings: ServeSettings, hint: str) -> Image.Image:
    if body.get("image") is None:
        raise BadRequest(f"no 'image'; expected {hint}", param="image")
    return decode_image(body["image"], settings.max_image_pixels, max_aspect=settings.max_aspect_ratio)


# ----------------------------------------------------------------------------------------- describe


@dataclass(frozen=True)
class DescribeRequest:
    """``POST /v1/describe``: JSON, or a multipart form with ``image`` a file and ``regions`` a JSON
    string. One answer per region, to the official prompt of ``mode`` or to ``question``."""

    image: Image.Image = field(metadata=wire(required=True, image=IMAGE))
    regions: tuple[Any, ...] = field(metadata=wire(required=True, regions=REGIONS))
    mode: str | None = field(metadata=wire(mode={**STRING, "enum": list(QUESTIONS), "default": "short"}))  # None: custom
    question: str = field(metadata=wire(question={**STRING, "description": "custom question naming <region1>"}))
    options: DecodingOptions = field(metadata=wire(max_new_tokens=INTEGER))
    demo_style: str = field(default="auto", metadata=wire(demo_style=DEMO_STYLE))


def parse_describe(body: Mapping, settings: ServeSettings) -> DescribeRequest:
    mode, question = body.get("mode", "short"), text_field(body, "question", settings.max_text_chars)
    if question is not None:
        mode, asked = None, check_text(question, 1, "question")
    elif not isinstance(mode, str) or mode not in QUESTIONS:
        raise BadRequest(f"mode is {_short(mode)}; expected one of {', '.join(QUESTIONS)} (or give a 'question')",
                         param="mode")
    else:
        asked = mode
    try:
        prompt = question_text(asked)
    except ValueError as err:
        raise BadRequest(str(err), param="question") from None
    options = decoding_options(settings, body.get("max_new_tokens"), tokens_key="max_new_tokens")
    style = demo_style_field(body)
    image = _image(body, settings, "base64 image bytes, a data: URL or a multipart file")
    if not body.get("regions"):
        raise BadRequest("no regions; expected a non-empty 'regions' list", param="regions")
    regions = check_region_list(body["regions"], settings.max_regions, image, settings)
    return DescribeRequest(image=image, regions=regions, mode=mode, question=prompt, options=options,
                           demo_style=style)


# ------------------------------------------------------------------------------------------ segment


@dataclass(frozen=True)
class SegmentRequest:
    """``POST /v1/segment``: exactly one of ``point``, ``points`` (+ ``labels``), ``box`` or
    ``everything``; with everything, ``pick`` also returns the smallest mask containing [x, y]."""

    image: Image.Image = field(metadata=wire(required=True, image=IMAGE))
    points: list | None = field(metadata=wire(point=POINT, points={"type": "array", "items": POINT}))
    labels: list | None = field(metadata=wire(labels={"type": "array", "items": INTEGER, "description": "1 inside, 0 outside"}))
    box: list | None = field(metadata=wire(box={"type": "array", "items": NUMBER, "minItems": 4, "maxItems": 4}))
    everything: bool = field(metadata=wire(everything={**BOOLEAN, "default": False}))
    pick: tuple[float, float] | None = field(metadata=wire(pick=POINT))
    demo_style: str = field(default="auto", metadata=wire(demo_style=DEMO_STYLE))  # the click rule


def parse_segment(body: Mapping, settings: ServeSettings) -> SegmentRequest:
    everything, style = flag(body, "everything"), demo_style_field(body)
    prompts = [k for k in ("point", "points", "box") if body.get(k) is not None] + (["everything"] if everything else [])
    if len(prompts) != 1:
        raise BadRequest(f"prompts {prompts}; expected exactly one of point, points, box, everything",
                         param=prompts[-1] if prompts else "point")
    pick = None
    if body.get("pick") is not None:
        value = body["pick"]
        if not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value):
            raise BadRequest(f"pick is {_short(value)}; expected [x, y], two finite numbers", param="pick")
        pick = (float(value[0]), float(value[1]))
    image = _image(body, settings, "base64 image bytes or a data: URL")
    points = [body["point"]] if body.get("point") is not None else body.get("points")
    labels, box = body.get("labels"), body.get("box")
    try:
        if points is not None:
            if isinstance(points, list) and len(points) > MAX_POINTS:
                raise BadRequest(f"points has {len(points)} points; at most {MAX_POINTS} are allowed",
                                 param="points")
            mask_io.check_points(points, labels, image.height, image.width)
        elif box is not None:
            mask_io.box_pixels(box, image.height, image.width)
    except mask_io.MaskError as err:
        raise BadRequest(f"{prompts[0]}: {err}", param=prompts[0]) from None
    return SegmentRequest(image=image, points=points, labels=labels, box=box, everything=everything, pick=pick,
                          demo_style=style)


# --------------------------------------------------------------------------------- chat completions

@dataclass(frozen=True)
class ChatRequest:
    """``POST /v1/chat/completions``: OpenAI chat completions, plus ``regions``. The first image_url
    part is the picture; later image_url parts are region masks (PNG: alpha channel or non-zero
    pixels); ``{'type': 'region', 'region': spec}`` parts carry RLE/polygons/boxes/points. Text names
    regions <region1>... in the order they appear (top-level ``regions`` first). System messages are
    ignored; ``n`` must be 1; ``temperature > 0`` samples (seeded by ``seed``), else greedy; ``model``,
    when given, must name the served model (else 404)."""

    image: Image.Image = field(metadata=wire(required=True, messages={"type": "array", "items": {"type": "object"}}))
    regions: tuple[Any, ...] = field(metadata=wire(regions=REGIONS))
    history: tuple[Turn, ...]  # the earlier user/assistant turns of ``messages``
    question: str  # the last user message's text
    options: DecodingOptions = field(metadata=wire(max_tokens=INTEGER, max_completion_tokens=INTEGER,
                                                   temperature=NUMBER, top_p=NUMBER, seed=INTEGER,
                                                   n={**INTEGER, "default": 1}))
    stream: bool = field(metadata=wire(stream={**BOOLEAN, "default": False}))
    model: str | None = field(metadata=wire(model={**STRING, "description": "the served model (see /v1/models)"}))
    demo_style: str = field(default="auto", metadata=wire(demo_style=DEMO_STYLE))


def parse_chat(body: Mapping, settings: ServeSettings, models: Collection[str] = (),
               generation_config: Mapping[str, Any] | None = None) -> ChatRequest:
    """Split OpenAI-style messages into the image, region specs, history and the question, checked
    against each other (every <regionK> names a given region). ``models``: the names ``model`` may
    take (empty: any); ``generation_config``: the served model's sampling defaults."""
    model = text_field(body, "model", 256)
    if model is not None and models and model not in models:
        raise BadRequest(f"model {model[:80]!r} does not exist; this server serves {sorted(models)[0]!r} "
                         "(see /v1/models)", status=404, param="model", code="model_not_found")
    if body.get("n") is not None and (not _is_int(body["n"]) or body["n"] != 1):
        raise BadRequest(f"n={_short(body['n'])}; this server returns exactly one choice (n=1)", param="n")
    stream, style = flag(body, "stream"), demo_style_field(body)
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    options = decoding_options(settings, body.get(key), body.get("temperature"), body.get("top_p"),
                               body.get("seed"), tokens_key=key, generation_config=generation_config)
    image_data, specs, turns = _conversation(body, settings.max_messages)
    image = decode_image(image_data, settings.max_image_pixels, "messages image_url",
                         max_aspect=settings.max_aspect_ratio)
    regions = check_region_list(specs, settings.max_regions, image, settings)
    history, question = tuple(turns[:-1]), turns[-1].text
    total = sum(len(t.text) for t in turns)
    if total > settings.max_text_chars:
        raise BadRequest(f"messages hold {total} characters of text; at most {settings.max_text_chars} are "
                         "allowed", status=413, param="messages", code="prompt_too_long")
    check_turns(history, len(regions))
    check_text(question, len(regions), "the last user message", "messages")
    if not question.strip():
        raise BadRequest("the last user message has no text; expected a question", param="messages")
    return ChatRequest(image=image, regions=regions, history=history, question=question, options=options,
                       stream=stream, model=model, demo_style=style)


def _conversation(body: Mapping, max_messages: int) -> tuple[Any, list[Any], list[Turn]]:
    """(image data, region specs in <regionK> order, user/assistant turns) of the messages.

    The first ``image_url`` part is the image; every later ``image_url`` part is a region mask;
    ``{"type": "region", "region": {...}}`` parts and the top-level ``regions`` list carry RLE,
    polygons, boxes or points. System messages are ignored: the model answers under the system
    prompt it was trained with.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages is missing or empty; expected a list of {'role', 'content'} objects", param="messages")
    if len(messages) > max_messages:
        raise BadRequest(f"{len(messages)} messages; at most {max_messages} are allowed", param="messages")
    image_data = None
    if body.get("regions") is not None and not isinstance(body["regions"], list):
        raise BadRequest(f"regions is a {type(body['regions']).__name__}; expected a list of region specs",
                         param="regions")
    specs: list[Any] = list(body.get("regions") or [])
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise BadRequest(f"{where} is a {type(message).__name__}; expected an object with role and content", param="messages")
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        if role not in ("user", "assistant"):
            raise BadRequest(f"{where}.role is {_short(role)}; expected 'system', 'user' or 'assistant'", param="messages")
        texts = []
        for j, part in enumerate(_parts(message.get("content"), where)):
            kind = part["type"]
            if kind == "text":
                texts.append(part.get("text"))
            elif kind == "image_url" and role == "user":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, Mapping) else url
                if image_data is None:
                    image_data = url
                else:
                    specs.append({"png": url})
            elif kind == "region" and role == "user":
                specs.append(part.get("region"))
            else:
                raise BadRequest(f"{where}.content[{j}] has type {_short(kind)} in a {role} message; expected 'text' "
                                 "(or 'image_url' / 'region' in user messages)", param="messages")
        if not all(isinstance(t, str) for t in texts):
            raise BadRequest(f"{where}: a text part has no string 'text'", param="messages")
        turns.append(Turn(role, "\n".join(texts)))
    if not turns or turns[-1].role != "user":
        raise BadRequest("the last non-system message must be from the user (the question to answer)", param="messages")
    for a, b in itertools.pairwise(turns):
        if a.role == b.role:
            raise BadRequest(f"two {a.role} messages in a row; expected user and assistant turns to alternate", param="messages")
    if turns[0].role != "user":
        raise BadRequest("the first non-system message must be from the user", param="messages")
    if image_data is None:
        raise BadRequest("no image: put the picture in the first user message as an image_url part "
                         "(data:image/png;base64,...)", param="messages")
    return image_data, specs, turns


def _parts(content: Any, where: str) -> list[Mapping]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content is a {type(content).__name__}; expected a string or a list of parts", param="messages")
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or "type" not in part:
            raise BadRequest(f"{where}.content[{j}] is not an object with a 'type'; expected "
                             "{'type': 'text'|'image_url'|'region', ...}", param="messages")
    return content
