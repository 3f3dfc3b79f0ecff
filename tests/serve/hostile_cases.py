"""The hostile requests of tests/serve/test_hostile.py: (id, method, path, request kwargs, statuses, words).

Every case is a request a client could send; ``words`` must appear (lower-cased) in the error
message, naming the field and what was expected. A case whose statuses include 200 is valid input
that must still be answered (other formats, data URLs, large but allowed images).
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import numpy as np
from PIL import Image

H, W = 48, 64


def picture() -> np.ndarray:
    image = np.full((H, W, 3), 30, dtype=np.uint8)
    image[10:30, 10:30] = [200, 30, 30]
    return image


def encoded(fmt: str, array: np.ndarray | None = None, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture() if array is None else array).save(buffer, fmt, **save)
    return buffer.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (no pixel data follows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def gif_two_frames() -> bytes:
    frames = [Image.fromarray(picture()), Image.fromarray(255 - picture())]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def rle(mask: np.ndarray) -> dict:
    from osprey.masks import encode_rle

    return encode_rle(mask)


PNG = b64(encoded("PNG"))
BOX = {"box": [10, 10, 30, 30]}
JSON = {"headers": {"content-type": "application/json"}}


def describe(**patch) -> dict:
    return {"json": {"image": PNG, "regions": [BOX], "max_new_tokens": 2, **patch}}


def segment(**patch) -> dict:
    body = {"image": PNG, "point": [20, 20], **patch}
    return {"json": {k: v for k, v in body.items() if v is not None}}


def chat(text: str = "What is <region1>?", image: object = "data:image/png;base64," + PNG, **patch) -> dict:
    content = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": text}]
    body = {"messages": [{"role": "user", "content": content}], "regions": [BOX], "max_tokens": 2, **patch}
    return {"json": {k: v for k, v in body.items() if v is not None}}


def raw(body: str | bytes, ctype: str = "application/json") -> dict:
    return {"content": body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass"),
            "headers": {"content-type": ctype}}


def with_raw_field(route_body: dict, key: str, literal: str) -> dict:
    """The JSON body with ``key`` set to a literal JSON token (NaN, 1e400, a 5,000-digit integer...)."""
    text = json.dumps({**route_body["json"], key: "__X__"}).replace('"__X__"', literal)
    return raw(text)


DIGITS = "9" * 5000
D, S, C = "/v1/describe", "/v1/segment", "/v1/chat/completions"
BAD, BIG = (400,), (413,)


def cases() -> list[tuple]:
    deep = "[" * 100_000 + "]" * 100_000
    mask = np.zeros((H, W), bool)
    mask[10:30, 10:30] = True
    out = [
        # -- images ------------------------------------------------------------------------------
        ("image-empty", "POST", D, describe(image=""), BAD, "image is empty"),
        ("image-missing", "POST", D, {"json": {"regions": [BOX]}}, BAD, "image"),
        ("image-int", "POST", D, describe(image=123), BAD, "image is a int"),
        ("image-list", "POST", D, describe(image=[1, 2]), BAD, "image is a list"),
        ("image-object", "POST", D, describe(image={"path": "/etc/passwd"}), BAD, "image is a dict"),
        ("image-abs-path", "POST", D, describe(image="/etc/passwd"), BAD, "file path"),
        ("image-rel-path", "POST", D, describe(image="../../etc/hosts"), BAD, "file path"),
        ("image-home-path", "POST", D, describe(image="~/.ssh/id_rsa"), BAD, "file path"),
        ("image-windows-path", "POST", D, describe(image="C:\\Windows\\win.ini"), BAD, "file path"),
        ("image-file-url", "POST", D, describe(image="file:///etc/passwd"), BAD, "url"),
        ("image-http-url", "POST", D, describe(image="http://127.0.0.1:9/x.png"), BAD, "never fetches"),
        ("image-data-url-not-base64", "POST", D, describe(image="data:image/png,abcd"), BAD, "data: url"),
        ("image-not-base64", "POST", D, describe(image="%%%not base64"), BAD, "not valid base64"),
        ("image-text-bytes", "POST", D, describe(image=b64(b"not an image at all")), BAD, "not a readable image"),
        ("image-qoi-header", "POST", D, describe(image=b64(b"qoif\x00\x00\x00\x10\x00\x00\x00\x10\x03\x00")), BAD,
         "not a readable image"),
        ("image-dds-header", "POST", D, describe(image=b64(b"DDS " + struct.pack("<I", 124) + bytes(120))), BAD,
         "not a readable image"),
        ("image-tiff-refused", "POST", D, describe(image=b64(encoded("TIFF"))), BAD, "allowed format"),
        ("image-ico-refused", "POST", D, describe(image=b64(encoded("ICO"))), BAD, "allowed format"),
        ("image-claims-100000x100000", "POST", D, describe(image=b64(png_claiming(100_000, 100_000))), BIG, "pixels"),
        ("image-claims-4097x4097", "POST", D, describe(image=b64(png_claiming(4097, 4097))), BIG, "pixels"),
        ("image-claims-0x0", "POST", D, describe(image=b64(png_claiming(0, 0))), (400, 413), "image"),
        ("image-1x1024-aspect", "POST", D, describe(image=b64(encoded("PNG", np.zeros((1024, 1, 3), np.uint8)))),
         BIG, "aspect ratio"),
        ("image-truncated-png", "POST", D, describe(image=b64(encoded("PNG")[:80])), BAD, "image"),
        ("image-png-whitespace", "POST", D, describe(image="\n".join(PNG[i:i + 76] for i in range(0, len(PNG), 76))),
         (200,), ""),
        ("image-plain-jpeg-base64", "POST", D, describe(image=b64(encoded("JPEG"))), (200,), ""),
        ("image-jpeg-data-url", "POST", D, describe(image="data:image/jpeg;base64," + b64(encoded("JPEG"))), (200,), ""),
        ("image-webp", "POST", D, describe(image=b64(encoded("WEBP"))), (200,), ""),
        ("image-bmp", "POST", D, describe(image=b64(encoded("BMP"))), (200,), ""),
        ("image-gif-two-frames", "POST", D, describe(image=b64(gif_two_frames())), (200,), ""),
        ("image-jpeg-wrong-mime", "POST", D, describe(image="data:text/plain;base64," + b64(encoded("JPEG"))), (200,), ""),
        # -- region lists and specs ----------------------------------------------------------------
        ("regions-missing", "POST", D, {"json": {"image": PNG}}, BAD, "regions"),
        ("regions-object", "POST", D, describe(regions={"box": [1, 1, 5, 5]}), BAD, "regions is a dict"),
        ("regions-string", "POST", D, describe(regions="abc"), BAD, "regions is a str"),
        ("regions-flat-numbers", "POST", D, describe(regions=[10, 10, 30, 10, 30, 30]), BAD, "flat list"),
        ("region-flat-polygon", "POST", D, describe(regions=[[10, 10, 30, 10, 30, 30]]), BAD, "flat list"),
        ("regions-too-many", "POST", D, describe(regions=[BOX] * 100), BAD, "at most 8"),
        ("region-path-string", "POST", D, describe(regions=["/etc/hosts"]), BAD, "never reads paths"),
        ("region-path-key", "POST", D, describe(regions=[{"path": "/etc/hosts"}]), BAD, "never reads paths"),
        ("region-url-key", "POST", D, describe(regions=[{"url": "http://127.0.0.1:9/m.png"}]), BAD, "never reads"),
        ("region-no-known-key", "POST", D, describe(regions=[{"shape": 1}]), BAD, "expected one of"),
        ("region-int", "POST", D, describe(regions=[5, {"box": [1, 1, 5, 5]}]), BAD, "region 0 is a int"),
        ("region-null", "POST", D, describe(regions=[None]), BAD, "region 0 is a nonetype"),
        ("rle-wrong-size", "POST", D, describe(regions=[{"size": [10, 10], "counts": [100]}]), BAD, "expected [48, 64]"),
        ("rle-600k-chars", "POST", D, describe(regions=[{"size": [H, W], "counts": "o" * 599_999 + "1"}]), BAD, "groups"),
        ("rle-5M-chars", "POST", D, describe(regions=[{"size": [H, W], "counts": "1" * 5_000_000}]), BIG, "counts"),
        ("rle-list-too-long", "POST", D, describe(regions=[{"size": [H, W], "counts": [0] * 10_000}]), BAD, "runs"),
        ("rle-list-strings", "POST", D, describe(regions=[{"size": [H, W], "counts": ["1", "2"]}]), BAD, "list of ints"),
        ("rle-counts-dict", "POST", D, describe(regions=[{"size": [H, W], "counts": {"a": 1}}]), BAD, "counts"),
        ("rle-negative-run", "POST", D, describe(regions=[{"size": [H, W], "counts": [-5, H * W + 5]}]), BAD, "negative"),
        ("rle-bad-sum", "POST", D, describe(regions=[{"size": [H, W], "counts": [5, 5]}]), BAD, "add up to"),
        ("rle-bad-char", "POST", D, describe(regions=[{"size": [H, W], "counts": "00 0"}]), BAD, "byte"),
        ("rle-all-empty", "POST", D, describe(regions=[{"size": [H, W], "counts": [H * W]}]), BAD, "empty"),
        ("rle-size-strings", "POST", D, describe(regions=[{"size": ["48", "64"], "counts": [H * W]}]), BAD, "size"),
        ("rle-rle-key-string", "POST", D, describe(regions=[{"rle": "abc"}]), BAD, "rle"),
        ("rle-valid", "POST", D, describe(regions=[rle(mask)]), (200,), ""),
        ("polygon-too-short", "POST", D, describe(regions=[{"polygons": [[1, 2, 3, 4]]}]), BAD, "coordinates"),
        ("polygon-strings", "POST", D, describe(regions=[{"polygons": [["a", 1, 2, 3, 4, 5]]}]), BAD, "coordinate"),
        ("polygon-outside", "POST", D, describe(regions=[{"polygons": [[0, 0, 900, 0, 900, 900]]}]), BAD, "spans"),
        ("polygon-too-many-numbers", "POST", D, describe(regions=[{"polygons": [[10, 10, 20, 10, 20, 20] * 50_000]}]),
         BIG, "numbers"),
        ("polygon-too-many", "POST", D, describe(regions=[{"polygons": [[10, 10, 20, 10, 20, 20]] * 2000}]), BIG,
         "polygons"),
        ("polygons-not-list", "POST", D, describe(regions=[{"polygons": "abc"}]), BAD, "polygons"),
        ("box-three-numbers", "POST", D, describe(regions=[{"box": [1, 2, 3]}]), BAD, "box"),
        ("box-empty", "POST", D, describe(regions=[{"box": [30, 30, 10, 10]}]), BAD, "empty"),
        ("box-outside", "POST", D, describe(regions=[{"box": [500, 500, 600, 600]}]), BAD, "no pixel"),
        ("box-strings", "POST", D, describe(regions=[{"box": ["1", "2", "3", "4"]}]), BAD, "box"),
        ("box-segment-string", "POST", D, describe(regions=[{"box": [1, 1, 9, 9], "segment": "yes"}]), BAD, "segment"),
        ("point-outside", "POST", D, describe(regions=[{"point": [999, 999]}]), BAD, "outside"),
        ("points-too-many", "POST", D, describe(regions=[{"points": [[5, 5]] * 1000}]), BAD, "at most 64"),
        ("points-bad-labels", "POST", D, describe(regions=[{"points": [[5, 5]], "labels": [7]}]), BAD, "labels"),
        ("points-all-negative", "POST", D, describe(regions=[{"points": [[5, 5]], "labels": [0]}]), BAD, "positive"),
        ("png-mask-wrong-size", "POST", D, describe(regions=[{"png": b64(encoded("PNG", np.zeros((5, 5), np.uint8)))}]),
         BAD, "expected the image's"),
        ("png-mask-not-image", "POST", D, describe(regions=[{"png": b64(b"hello world!")}]), BAD, "readable"),
        ("png-mask-empty", "POST", D, describe(regions=[{"png": ""}]), BAD, "png is empty"),
        ("png-mask-int", "POST", D, describe(regions=[{"png": 5}]), BAD, "png is int"),
        ("png-mask-path", "POST", D, describe(regions=[{"png": "/etc/passwd"}]), BAD, "file path"),
        # -- text and numbers ---------------------------------------------------------------------
        ("mode-int", "POST", D, describe(mode=5), BAD, "mode"),
        ("mode-unknown", "POST", D, describe(mode="poem"), BAD, "mode"),
        ("question-int", "POST", D, describe(question=123), BAD, "question"),
        ("question-too-long", "POST", D, describe(question="<region1> " + "a" * 9000), BIG, "question"),
        ("question-1MiB", "POST", D, describe(question="<region1> " + "a" * 1_048_576), BIG, "question"),
        ("question-surrogate", "POST", D, raw(json.dumps(describe(question="<region1> \ud800")["json"])), BAD,
         "surrogate"),
        ("question-slot-tokens", "POST", D, describe(question="What is <mask><pos>?"), BAD, "'<mask>'"),
        ("question-region-5000-digits", "POST", D, describe(question=f"<region1> <region{DIGITS}>"), BAD, "region"),
        ("question-region-2", "POST", D, describe(question="<region1> and <region2>"), BAD, "<region2>"),
        ("question-nul", "POST", D, describe(question="<region1>\x00"), BAD, "nul"),
        ("question-no-region", "POST", D, describe(question="what?"), BAD, "region1"),
        ("max-new-tokens-too-many", "POST", D, describe(max_new_tokens=10_000), BAD, "max_new_tokens"),
        ("max-new-tokens-5000-digits", "POST", D, with_raw_field(describe(), "max_new_tokens", DIGITS), BAD,
         "max_new_tokens"),
        ("max-new-tokens-string", "POST", D, describe(max_new_tokens="5"), BAD, "max_new_tokens"),
        ("max-new-tokens-bool", "POST", D, describe(max_new_tokens=True), BAD, "max_new_tokens"),
        ("max-new-tokens-float", "POST", D, describe(max_new_tokens=2.5), BAD, "max_new_tokens"),
        ("max-new-tokens-zero", "POST", D, describe(max_new_tokens=0), BAD, "max_new_tokens"),
        ("max-new-tokens-inf", "POST", D, with_raw_field(describe(), "max_new_tokens", "1e400"), BAD, "max_new_tokens"),
        # -- the body itself ---------------------------------------------------------------------------
        ("body-not-json", "POST", D, raw("{not json"), BAD, "not valid json"),
        ("body-not-utf8", "POST", D, raw(b'{"image": "\xff\xfe"}'), BAD, "utf-8"),
        ("body-array", "POST", D, raw("[1, 2]"), BAD, "expected an object"),
        ("body-nested-100000", "POST", D, raw(deep), BAD, "nested"),
        ("body-nested-40-in-regions", "POST", D, raw(json.dumps({"image": PNG, "regions": [BOX]}).replace(
            '"regions": [', '"regions": [' + "[" * 40 + "]" * 40 + ",")), BAD, "nested"),
        ("body-nan-literal", "POST", D, with_raw_field(describe(), "max_new_tokens", "NaN"), BAD, "nan"),
        ("body-infinity-literal", "POST", D, with_raw_field(describe(), "max_new_tokens", "-Infinity"), BAD, "infinity"),
        ("body-text-plain", "POST", D, raw("{}", "text/plain"), (415,), "content type"),
        ("body-too-large", "POST", D, raw(b"{" + b" " * (17 * 1024 * 1024) + b"}"), BIG, "at most"),
        ("form-regions-not-json", "POST", D, {"files": {"image": ("a.png", encoded("PNG"))}, "data": {"regions": "[{"}},
         BAD, "regions"),
        ("form-max-new-tokens-text", "POST", D, {"files": {"image": ("a.png", encoded("PNG"))},
                                                 "data": {"regions": json.dumps([BOX]), "max_new_tokens": "lots"}},
         BAD, "max_new_tokens"),
        ("form-second-file", "POST", D, {"files": {"image": ("a.png", encoded("PNG")), "regions": ("r", b"[]")}},
         BAD, "file"),
        ("form-image-path-text", "POST", D, {"files": {"image": (None, b"/etc/passwd"), "regions": (None, json.dumps([BOX]))}},
         BAD, "file path"),
        ("form-valid-jpeg", "POST", D, {"files": {"image": ("a.jpg", encoded("JPEG"))},
                                        "data": {"regions": json.dumps([BOX]), "max_new_tokens": "2"}}, (200,), ""),
        # -- segment -------------------------------------------------------------------------------
        ("segment-no-prompt", "POST", S, segment(point=None), BAD, "exactly one"),
        ("segment-two-prompts", "POST", S, segment(box=[1, 1, 9, 9]), BAD, "exactly one"),
        ("segment-everything-string", "POST", S, segment(point=None, everything="true"), BAD, "everything"),
        ("segment-everything-false-string", "POST", S, segment(point=None, everything="false"), BAD, "everything"),
        ("segment-everything-int", "POST", S, segment(point=None, everything=1), BAD, "everything"),
        ("segment-pick-nan", "POST", S, with_raw_field(segment(point=None, everything=True), "pick", "[NaN, 0]"), BAD,
         "nan"),
        ("segment-pick-1e400", "POST", S, with_raw_field(segment(point=None, everything=True), "pick", "[1e400, 0]"),
         BAD, "finite"),
        ("segment-pick-string", "POST", S, segment(point=None, everything=True, pick="a"), BAD, "pick"),
        ("segment-pick-three", "POST", S, segment(point=None, everything=True, pick=[1, 2, 3]), BAD, "pick"),
        ("segment-point-1e400", "POST", S, with_raw_field(segment(), "point", "[1e400, 0]"), BAD, "finite"),
        ("segment-point-outside", "POST", S, segment(point=[-5, 3]), BAD, "outside"),
        ("segment-points-too-many", "POST", S, segment(point=None, points=[[5, 5]] * 1000), BAD, "at most 64"),
        ("segment-box-huge-int", "POST", S, with_raw_field(segment(point=None), "box", f"[0, 0, {DIGITS}, 5]"), BAD,
         "box"),
        ("segment-labels-mismatch", "POST", S, segment(point=None, points=[[5, 5]], labels=[1, 1]), BAD, "labels"),
        ("segment-image-path", "POST", S, segment(image="/etc/passwd"), BAD, "file path"),
        ("segment-everything-2048", "POST", S, segment(point=None, everything=True, pick=[100, 100], image=b64(encoded(
            "PNG", np.zeros((2048, 2048, 3), np.uint8)))), (200,), ""),
        ("segment-everything-valid", "POST", S, segment(point=None, everything=True, pick=[20, 20]), (200,), ""),
    ]
    return out + chat_cases() + route_cases()


def chat_cases() -> list[tuple]:
    user = {"role": "user", "content": "hi"}
    return [
        ("chat-messages-missing", "POST", C, {"json": {"max_tokens": 2}}, BAD, "messages"),
        ("chat-messages-empty", "POST", C, {"json": {"messages": []}}, BAD, "messages"),
        ("chat-messages-string", "POST", C, {"json": {"messages": "hi"}}, BAD, "messages"),
        ("chat-message-int", "POST", C, {"json": {"messages": [5]}}, BAD, "messages[0]"),
        ("chat-role-unknown", "POST", C, {"json": {"messages": [{"role": "root", "content": "x"}]}}, BAD, "role"),
        ("chat-role-object", "POST", C, {"json": {"messages": [{"role": {"a": 1}, "content": "x"}]}}, BAD, "role"),
        ("chat-content-int", "POST", C, {"json": {"messages": [{"role": "user", "content": 5}]}}, BAD, "content"),
        ("chat-part-no-type", "POST", C, {"json": {"messages": [{"role": "user", "content": [{"text": "x"}]}]}}, BAD,
         "type"),
        ("chat-part-video", "POST", C, {"json": {"messages": [{"role": "user", "content": [{"type": "video"}]}]}},
         BAD, "type"),
        ("chat-text-not-string", "POST", C, {"json": {"messages": [{"role": "user", "content": [
            {"type": "text", "text": 5}]}]}}, BAD, "text"),
        ("chat-no-image", "POST", C, {"json": {"messages": [user]}}, BAD, "image"),
        ("chat-image-path", "POST", C, chat(image="/etc/passwd"), BAD, "file path"),
        ("chat-image-url-object", "POST", C, chat(image={"x": 1}), BAD, "image"),
        ("chat-image-http", "POST", C, chat(image="https://127.0.0.1:9/a.png"), BAD, "never fetches"),
        ("chat-image-jpeg-data-url", "POST", C, chat(image="data:image/jpeg;base64," + b64(encoded("JPEG"))),
         (200,), ""),
        ("chat-last-assistant", "POST", C, {"json": {"messages": [user, {"role": "assistant", "content": "x"}]}}, BAD,
         "user"),
        ("chat-two-users", "POST", C, {"json": {"messages": [user, user]}}, BAD, "alternate"),
        ("chat-stream-false-string", "POST", C, chat(stream="false"), BAD, "stream"),
        ("chat-stream-object", "POST", C, chat(stream={"on": 1}), BAD, "stream"),
        ("chat-stream-int", "POST", C, chat(stream=1), BAD, "stream"),
        ("chat-n-2", "POST", C, chat(n=2), BAD, "n="),
        ("chat-n-string", "POST", C, chat(n="1"), BAD, "n="),
        ("chat-n-true", "POST", C, chat(n=True), BAD, "n="),
        ("chat-temperature-nan", "POST", C, with_raw_field(chat(), "temperature", "NaN"), BAD, "nan"),
        ("chat-temperature-1e-300", "POST", C, chat(temperature=1e-300), BAD, "temperature"),
        ("chat-temperature-1e400", "POST", C, with_raw_field(chat(), "temperature", "1e400"), BAD, "finite"),
        ("chat-temperature-huge-int", "POST", C, with_raw_field(chat(), "temperature", "1" + "0" * 400), BAD,
         "temperature"),
        ("chat-temperature-string", "POST", C, chat(temperature="hot"), BAD, "temperature"),
        ("chat-temperature-5", "POST", C, chat(temperature=5), BAD, "temperature"),
        ("chat-temperature-negative", "POST", C, chat(temperature=-1), BAD, "temperature"),
        ("chat-top-p-zero", "POST", C, chat(top_p=0), BAD, "top_p"),
        ("chat-top-p-two", "POST", C, chat(top_p=2), BAD, "top_p"),
        ("chat-seed-2-64", "POST", C, chat(seed=2**64), BAD, "seed"),
        ("chat-seed-5000-digits", "POST", C, with_raw_field(chat(), "seed", DIGITS), BAD, "seed"),
        ("chat-seed-float", "POST", C, chat(seed=1.5), BAD, "seed"),
        ("chat-max-tokens-5000-digits", "POST", C, with_raw_field(chat(), "max_tokens", DIGITS), BAD, "max_tokens"),
        ("chat-max-tokens-million", "POST", C, chat(max_tokens=10**6), BAD, "max_tokens"),
        ("chat-max-completion-tokens-string", "POST", C, chat(max_completion_tokens="8"), BAD, "max_completion_tokens"),
        ("chat-model-unknown", "POST", C, chat(model="gpt-4"), (404,), "model"),
        ("chat-model-int", "POST", C, chat(model=5), BAD, "model"),
        ("chat-model-10000-chars", "POST", C, chat(model="x" * 10_000), BIG, "model"),
        ("chat-model-served", "POST", C, chat(model="tiny"), (200,), ""),
        ("chat-sampling-valid", "POST", C, chat(temperature=0.7, seed=3, top_p=0.9), (200,), ""),
        ("chat-text-1MiB", "POST", C, chat(text="<region1> " + "a" * 1_048_576), BIG, "messages"),
        ("chat-text-9000", "POST", C, chat(text="<region1> " + "a" * 9000), BIG, "messages"),
        ("chat-text-surrogate", "POST", C, raw(json.dumps(chat(text="<region1> \udfff")["json"])), BAD, "surrogate"),
        ("chat-text-slot", "POST", C, chat(text="<image> <region1>"), BAD, "'<image>'"),
        ("chat-region-5000-digits", "POST", C, chat(text=f"<region{DIGITS}>"), BAD, "region"),
        ("chat-stream-bad-region", "POST", C, chat(stream=True, regions=[{"box": [1, 2, 3]}]), BAD, "box"),
        ("chat-stream-1e-300", "POST", C, chat(stream=True, temperature=1e-300), BAD, "temperature"),
        ("chat-stream-region-3", "POST", C, chat(stream=True, text="<region3>"), BAD, "<region3>"),
        ("chat-stream-valid", "POST", C, chat(stream=True), (200,), ""),
        ("chat-too-many-messages", "POST", C, {"json": {"messages": [user, {"role": "assistant", "content": "x"}] * 40}},
         BAD, "at most"),
        ("chat-regions-int", "POST", C, chat(regions=5), BAD, "regions"),
        ("chat-regions-flat", "POST", C, chat(regions=[1, 2, 3, 4]), BAD, "flat list"),
        ("chat-region-part-bad", "POST", C, {"json": {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
            {"type": "region", "region": {"counts": "abc"}}, {"type": "text", "text": "<region1>?"}]}]}}, BAD,
         "rle"),
        ("chat-mask-part-not-image", "POST", C, {"json": {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(b"nope!")}},
            {"type": "text", "text": "<region1>?"}]}]}}, BAD, "readable"),
        ("chat-max-tokens-float", "POST", C, chat(max_tokens=2.0), BAD, "max_tokens"),
    ]


def route_cases() -> list[tuple]:
    evil = {"headers": {"host": "evil.example", "content-type": "application/json"}, "content": b"{}"}
    return [
        ("route-get-describe", "GET", D, {}, (405,), "not allowed"),
        ("route-trailing-slash-evil-host", "POST", D + "/", evil, (404,), "no route"),
        ("route-unknown", "GET", "/nope", {}, (404,), "no route"),
        ("route-delete-healthz", "DELETE", "/healthz", {}, (405,), "not allowed"),
        ("route-example-traversal", "GET", "/v1/examples/..%2f..%2fetc%2fpasswd", {}, (404,), ""),
        ("route-example-unknown", "GET", "/v1/examples/passwd", {}, (404,), "no example"),
        ("route-post-models", "POST", "/v1/models", {}, (405,), "not allowed"),
        ("route-get-chat", "GET", C, {}, (405,), "not allowed"),
        ("route-put-segment", "PUT", S, {"json": {}}, (405,), "not allowed"),
    ]
