#!/usr/bin/env bash
# The prepared GPU check (one call on a borrowed H100/H200; never part of CI).
#
# Environment: bench/gpu_env.sh (wheels in .whl/, the package from src/). Writes each step's output
# under $OUT (or ./gpu_check_out) and keeps going when a step fails.
#
#   bash bench/gpu_check.sh
set -u
source "$(dirname "$0")/gpu_env.sh"

nvidia-smi -L
step imports python3 -c "
import osprey, torch, torchvision, transformers, open_clip, timm
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'transformers', transformers.__version__,
      'timm', timm.__version__, 'open_clip', open_clip.__version__)
boxes = torch.tensor([[0., 0, 10, 10], [1, 1, 11, 11]], device='cuda')
print('torchvision nms on cuda:', torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8], device='cuda'), 0.5).tolist())
"
step mask_extractor python3 bench/mask_extractor.py --device cuda --repeats 20
step mask_extractor_16x50 python3 bench/mask_extractor.py --device cuda --repeats 20 --images 16 --regions 50
step describe_7b_1layer python3 bench/describe_all.py --preset osprey_7b_1layer --device cuda --dtype bfloat16 \
    --regions 1,2,4,8,16 --repeats 3
# the full 32-layer architecture in float32: with random weights, bf16 rounding differences between
# the two paths' kernels flip near-tied greedy picks (seen here: the 7th token of one region)
step describe_7b python3 bench/describe_all.py --preset osprey_7b --device cuda --dtype float32 \
    --regions 1,2,4,8,16 --repeats 2
step train_tests python3 -m pytest -q -x -p no:cacheprovider tests/train/test_train.py -k "not two_processes and not sigkill"
