#!/usr/bin/env bash
# Second prepared GPU check: the user-facing commands with --device cuda (auto) on a borrowed GPU.
# Environment: bench/gpu_env.sh (wheels in .whl/, the package from src/).
set -u
source "$(dirname "$0")/gpu_env.sh"
osprey() { python3 -m osprey.cli "$@"; }
echo "=== describe, 7B-shaped (1 layer), --device auto"
time osprey describe src/osprey/assets/examples/coins.png --rle src/osprey/assets/examples/coins.json \
    --model osprey_7b_1layer --max-new-tokens 8 --out "$OUT/describe" 2>&1 | grep -v Warning | tail -6
python3 -c "import json; r = json.load(open('$OUT/describe/answers.json')); print('device in record:', r.get('device'), '| regions:', len(r['regions']))"
echo "=== eval synthetic, tiny, --device cuda"
osprey eval synthetic --model tiny --device cuda --images 2 --max-new-tokens 4 --out "$OUT/eval" 2>&1 \
    | grep -a "RESULT\|Error\|error" | tail -5
