#!/usr/bin/env bash
# Second prepared GPU check: the user-facing commands with --device cuda (auto) on a borrowed GPU.
# Same environment as bench/gpu_check.sh (wheels in .whl/, the package from src/).
set -u
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=$PWD/src:/tmp/site
else
    export PYTHONPATH=$PWD/src
fi
osprey() { python3 -m osprey.cli "$@"; }
echo "=== describe, 7B-shaped (1 layer), --device auto"
time osprey describe src/osprey/assets/examples/coins.png --rle src/osprey/assets/examples/coins.json \
    --model osprey_7b_1layer --max-new-tokens 8 --out "$OUT/describe" 2>&1 | grep -v Warning | tail -6
python3 -c "import json; r = json.load(open('$OUT/describe/answers.json')); print('device in record:', r.get('device'), '| regions:', len(r['regions']))"
echo "=== eval synthetic, tiny, --device cuda"
osprey eval synthetic --model tiny --device cuda --images 2 --max-new-tokens 4 --out "$OUT/eval" 2>&1 \
    | grep -a "RESULT\|Error\|error" | tail -5
