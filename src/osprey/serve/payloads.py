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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image

from osprey.inference.predictor import QUESTIONS, RESERVED, check_question, question_text
from osprey.model.generation import DecodingOptions
from osprey.serve.decoding import decode_image
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


def decoding_options(settings: ServeSettings, max_new_tokens: Any = None, temperature: Any = None,
                     top_p: Any = None, seed: Any = None) -> DecodingOptions:
    """How to decode: greedy unless ``temperature > 0``; at most ``settings.max_new_tokens`` tokens."""
    tokens = settings.default_new_tokens if max_new_tokens is None else max_new_tokens
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= settings.max_new_tokens:
        raise BadRequest(f"max tokens {tokens!r}; expected an integer in 1..{settings.max_new_tokens}")
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise BadRequest(f"{name} {value!r}; expected a number")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest(f"seed {seed!r}; expected an integer")
    sample = temperature is not None and temperature > 0
    try:
        return DecodingOptions(max_new_tokens=tokens, do_sample=sample,
                               temperature=float(temperature) if sample else 0.2,
                               top_p=float(top_p) if top_p is not None else 1.0, seed=seed)
    except ValueError as err:
        raise BadRequest(str(err)) from None


def check_region_list(specs: Any, max_regions: int) -> tuple[Any, ...]:
    """The client's region specs, if they are a list of at most ``max_regions``."""
    if specs is None:
        return ()
    if not isinstance(specs, list):
        raise BadRequest(f"regions is a {type(specs).__name__}; expected a list of region specs")
    if len(specs) > max_regions:
        raise BadRequest(f"{len(specs)} regions given; at most {max_regions} per request are allowed")
    return tuple(specs)


def check_text(text: Any, num_regions: int, what: str = "question") -> str:
    """The text, if it names only regions that exist and holds no reserved slot token
    (:func:`osprey.inference.predictor.check_question`, as a 400)."""
    try:
        return check_question(text, num_regions, what)
    except ValueError as err:
        raise BadRequest(str(err)) from None


def check_turns(turns: Sequence[Turn], num_regions: int) -> None:
    for k, turn in enumerate(turns):
        if turn.role == "user":
            check_text(turn.text, num_regions, f"message {k + 1}")
        elif RESERVED.search(turn.text):
            raise BadRequest(f"assistant message {k + 1} contains {RESERVED.search(turn.text).group(0)!r}; "
                             "slot tokens cannot appear in text")


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


def parse_describe(body: Mapping, settings: ServeSettings) -> DescribeRequest:
    if "image" not in body:
        raise BadRequest("no 'image'; expected base64 image bytes, a data: URL or a multipart file")
    mode, question = body.get("mode", "short"), body.get("question")
    if question is not None:
        mode, asked = None, check_text(question, 1, "question")
    elif mode not in QUESTIONS:
        raise BadRequest(f"mode {mode!r}; expected one of {', '.join(QUESTIONS)} (or give a 'question')")
    else:
        asked = mode
    try:
        prompt = question_text(asked)
    except ValueError as err:
        raise BadRequest(str(err)) from None
    options = decoding_options(settings, body.get("max_new_tokens"))
    image = decode_image(body["image"], settings.max_image_pixels)
    if not body.get("regions"):
        raise BadRequest("no regions; expected a non-empty 'regions' list")
    regions = check_region_list(body["regions"], settings.max_regions)
    return DescribeRequest(image=image, regions=regions, mode=mode, question=prompt, options=options)


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


def parse_segment(body: Mapping, settings: ServeSettings) -> SegmentRequest:
    if "image" not in body:
        raise BadRequest("no 'image'; expected base64 image bytes or a data: URL")
    prompts = [k for k in ("point", "points", "box") if body.get(k) is not None] + (
        ["everything"] if body.get("everything") else [])
    if len(prompts) != 1:
        raise BadRequest(f"prompts {prompts}; expected exactly one of point, points, box, everything")
    pick = None
    if body.get("pick") is not None:
        try:
            x, y = (float(v) for v in body["pick"])
        except (TypeError, ValueError):
            raise BadRequest(f"pick {body['pick']!r}; expected [x, y]") from None
        pick = (x, y)
    image = decode_image(body["image"], settings.max_image_pixels)
    points = [body["point"]] if body.get("point") is not None else body.get("points")
    return SegmentRequest(image=image, points=points, labels=body.get("labels"), box=body.get("box"),
                          everything=bool(body.get("everything")), pick=pick)


# --------------------------------------------------------------------------------- chat completions

@dataclass(frozen=True)
class ChatRequest:
    """``POST /v1/chat/completions``: OpenAI chat completions, plus ``regions``. The first image_url
    part is the picture; later image_url parts are region masks (PNG: alpha channel or non-zero
    pixels); ``{'type': 'region', 'region': spec}`` parts carry RLE/polygons/boxes/points. Text names
    regions <region1>... in the order they appear (top-level ``regions`` first). System messages are
    ignored; ``n`` must be 1; ``temperature > 0`` samples (seeded by ``seed``), else greedy."""

    image: Image.Image = field(metadata=wire(required=True, messages={"type": "array", "items": {"type": "object"}}))
    regions: tuple[Any, ...] = field(metadata=wire(regions=REGIONS))
    history: tuple[Turn, ...]  # the earlier user/assistant turns of ``messages``
    question: str  # the last user message's text
    options: DecodingOptions = field(metadata=wire(max_tokens=INTEGER, max_completion_tokens=INTEGER,
                                                   temperature=NUMBER, top_p=NUMBER, seed=INTEGER,
                                                   n={**INTEGER, "default": 1}))
    stream: bool = field(metadata=wire(stream={**BOOLEAN, "default": False}))
    model: str | None = field(metadata=wire(model={**STRING, "description": "ignored: the server serves one model"}))


def parse_chat(body: Mapping, settings: ServeSettings) -> ChatRequest:
    """Split OpenAI-style messages into the image, region specs, history and the question, checked
    against each other (every <regionK> names a given region)."""
    if body.get("n", 1) != 1:
        raise BadRequest(f"n={body.get('n')!r}; this server returns exactly one choice (n=1)")
    options = decoding_options(settings, body.get("max_completion_tokens", body.get("max_tokens")),
                               body.get("temperature"), body.get("top_p"), body.get("seed"))
    image_data, specs, turns = _conversation(body, settings.max_messages)
    image = decode_image(image_data, settings.max_image_pixels)
    regions = check_region_list(specs, settings.max_regions)
    history, question = tuple(turns[:-1]), turns[-1].text
    check_turns(history, len(regions))
    check_text(question, len(regions), "the last user message")
    if not question.strip():
        raise BadRequest("the last user message has no text; expected a question")
    return ChatRequest(image=image, regions=regions, history=history, question=question, options=options,
                       stream=bool(body.get("stream")), model=body.get("model"))


def _conversation(body: Mapping, max_messages: int) -> tuple[Any, list[Any], list[Turn]]:
    """(image data, region specs in <regionK> order, user/assistant turns) of the messages.

    The first ``image_url`` part is the image; every later ``image_url`` part is a region mask;
    ``{"type": "region", "region": {...}}`` parts and the top-level ``regions`` list carry RLE,
    polygons, boxes or points. System messages are ignored: the model answers under the system
    prompt it was trained with.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages is missing or empty; expected a list of {'role', 'content'} objects")
    if len(messages) > max_messages:
        raise BadRequest(f"{len(messages)} messages; at most {max_messages} are allowed")
    image_data = None
    specs: list[Any] = list(body.get("regions") or [])
    if not isinstance(body.get("regions") or [], list):
        raise BadRequest(f"regions is a {type(body.get('regions')).__name__}; expected a list of region specs")
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise BadRequest(f"{where} is a {type(message).__name__}; expected an object with role and content")
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        if role not in ("user", "assistant"):
            raise BadRequest(f"{where}.role is {role!r}; expected 'system', 'user' or 'assistant'")
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
                raise BadRequest(f"{where}.content[{j}] has type {kind!r} in a {role} message; expected 'text' "
                                 "(or 'image_url' / 'region' in user messages)")
        if not all(isinstance(t, str) for t in texts):
            raise BadRequest(f"{where}: a text part has no string 'text'")
        turns.append(Turn(role, "\n".join(texts)))
    if not turns or turns[-1].role != "user":
        raise BadRequest("the last non-system message must be from the user (the question to answer)")
    for a, b in itertools.pairwise(turns):
        if a.role == b.role:
            raise BadRequest(f"two {a.role} messages in a row; expected user and assistant turns to alternate")
    if turns[0].role != "user":
        raise BadRequest("the first non-system message must be from the user")
    if image_data is None:
        raise BadRequest("no image: put the picture in the first user message as an image_url part "
                         "(data:image/png;base64,...)")
    return image_data, specs, turns


def _parts(content: Any, where: str) -> list[Mapping]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content is a {type(content).__name__}; expected a string or a list of parts")
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or "type" not in part:
            raise BadRequest(f"{where}.content[{j}] is not an object with a 'type'; expected "
                             "{'type': 'text'|'image_url'|'region', ...}")
    return content
