"""Tiny random models whose answers depend on their inputs (shared by the decoding and serving tests).

A freshly initialised tiny LLM gives near-uniform logits, so greedy answers would barely depend on
the prompt; scrambling its weights (and, for region tests, sharpening the mask extractor's output)
makes every region and every request produce its own tokens, so a mixed-up row shows as a wrong answer.
"""

from __future__ import annotations

import torch

from osprey.model.loading import load_model


def scrambled_tiny(seed: int = 1, *, sharpen_regions: bool = True):
    """The ``tiny`` preset with its LLM weights redrawn from ``seed`` (norms kept); returns (model, tokenizer)."""
    model, tokenizer, _ = load_model("tiny", seed=0)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.language_model.named_parameters():
            if "norm" not in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
        if sharpen_regions:
            model.mask_extractor.feat_linear.weight.mul_(10)
            model.mask_extractor.mask_linear.layers[-1].weight.mul_(10)
    return model, tokenizer
