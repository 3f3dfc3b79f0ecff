#!/usr/bin/env bash
# Second prepared GPU check: the user-facing commands with --device cuda (auto) on a borrowed GPU.
# Environment: bench/gpu_env.sh (wheels in .whl/, the package from src/).
set -u
source "$(dirname "$0")/gpu_env.sh"
osprey() { python3 -m osprey.cli "$@"; }
# `eval synthetic` scores captions with pycocoevalcap, which needs Java: skipped where there is none
# (the borrowed GPU machines have none; the answering ran there, the scoring then stopped).
have_java() { command -v java >/dev/null || { echo "(skipped: no java on this machine)"; return 1; }; }
echo "=== describe, 7B-shaped (1 layer), --device auto"
time osprey describe src/osprey/assets/examples/coins.png --rle src/osprey/assets/examples/coins.json \
    --model osprey_7b_1layer --max-new-tokens 8 --out "$OUT/describe" 2>&1 | grep -v Warning | tail -6
python3 -c "import json; r = json.load(open('$OUT/describe/answers.json')); print('device in record:', r.get('device'), '| regions:', len(r['regions']))"
echo "=== eval synthetic, tiny, --device cuda"
have_java && osprey eval synthetic --model tiny --device cuda --images 2 --max-new-tokens 4 --out "$OUT/eval" 2>&1 \
    | grep -a "RESULT\|Error\|error" | tail -5
for dtype in float16 bfloat16; do
    echo "=== describe, 7B-shaped (1 layer), --dtype $dtype"
    osprey describe src/osprey/assets/examples/coins.png --rle src/osprey/assets/examples/coins.json \
        --model osprey_7b_1layer --dtype $dtype --max-new-tokens 8 --out "$OUT/describe_$dtype" 2>&1 \
        | grep -v Warning | tail -3
    python3 -c "import json; r = json.load(open('$OUT/describe_$dtype/answers.json')); print('dtype in record:', r.get('dtype'), '| device:', r.get('device'))"
    echo "=== eval synthetic, tiny, --dtype $dtype"
    have_java && osprey eval synthetic --model tiny --dtype $dtype --images 2 --max-new-tokens 4 --out "$OUT/eval_$dtype" 2>&1 \
        | grep -a "RESULT\|Error\|error" | tail -3
done
