#!/usr/bin/env bash
# Fine-tune on your own masks: COCO-format annotations -> a LoRA-tuned model -> an evaluation.
# Walkthrough: docs/finetune.md. Every variable can be set from the environment, e.g.
#   MODEL=tiny STEPS=2 IMAGES=8 bash examples/finetune_own_masks.sh     (a 1-minute smoke run)
set -euo pipefail
OSPREY=${OSPREY:-.venv/bin/osprey}
WORK=${WORK:-runs/finetune}
MODEL=${MODEL:-bundled}      # the model to start from: bundled, a model folder or a preset
STEPS=${STEPS:-200}          # optimizer steps
IMAGES=${IMAGES:-400}        # training scenes (your data replaces step 1)
EVAL_IMAGES=${EVAL_IMAGES:-20}

# 1. Your data: a COCO instances file and its images. The synthetic world stands in here;
#    with your own data, put instances.json under $WORK/data/annotations and the images under $WORK/data/images.
$OSPREY data synth "$WORK/data" --images "$IMAGES" --split train --no-progress

# 2. Check every record: masks decodable and inside the image, images present (exit 1 on any bad record).
$OSPREY data validate "$WORK/data/annotations/instances.json" --source coco_instances --images "$WORK/data/images"

# 3. Stage 3 with LoRA adapters on the LLM (the tower stays frozen unless train_vision=true).
$OSPREY train --config configs/finetune_lora.yaml model="$MODEL" data_root="$WORK/data" \
  output_dir="$WORK/run" max_steps="$STEPS" progress=false

# 4. Evaluate on held-out scenes (seeds the training split never uses).
$OSPREY eval synthetic --model "$WORK/run/final" --images "$EVAL_IMAGES" --out "$WORK/eval"
