"""Command-line flags shared by every command that loads a model (``describe``, ``chat``, ``serve``,
``eval``): one spelling, one help text. argparse only, so registering them loads no torch."""

from __future__ import annotations

import argparse

PRECISION_CHOICES = ("auto", "float32", "bfloat16", "float16")  # the names of model.loading.PRECISIONS + auto
QUANTIZE_CHOICES = ("none", "int8", "int4")  # osprey.model.quantize.QUANTIZE_CHOICES


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device``, ``--dtype`` and ``--quantize``, read by :func:`osprey.model.loading.load_model`."""
    parser.add_argument("--model", default=None,
                        help="'bundled' (the trained osprey-small; the default when installed), a model folder "
                        "(official or ours), or a preset name such as tiny (random init)")
    parser.add_argument("--device", default="auto",
                        help="where the model (and SAM) run: auto (a CUDA GPU when there is one, else cpu), cpu, "
                        "cuda, cuda:N")
    parser.add_argument("--dtype", default="auto", choices=PRECISION_CHOICES,
                        help="the model's precision; auto (default): as its weights are stored (float32 for presets "
                        "and the bundled model, bfloat16 for a released Osprey-7B); bfloat16 halves float32's "
                        "memory and is faster on GPUs and on CPUs with AVX-512 BF16; float16 on a GPU only. The "
                        "mask extractor always runs in float32, as in the official model")
    parser.add_argument("--quantize", default="none", choices=QUANTIZE_CHOICES,
                        help="weight-only quantization of the LLM's and the projector's linear layers (torchao): "
                        "int8 (CPU or GPU; about a quarter of their float32 memory) or int4 (CUDA GPU with "
                        "--dtype bfloat16); the mask extractor stays float32. Default none")


def add_decoding_flags(parser: argparse.ArgumentParser, *, max_new_tokens: int | None = 1024, seed: bool = True) -> None:
    """``--max-new-tokens``, ``--sample``, ``--temperature``, ``--top-p``, ``--top-k`` (and ``--seed``),
    read by :func:`osprey.model.generation.options_from_flags`."""
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                        help=f"answer length cap (default {max_new_tokens}, as the official demo and evals)"
                        if max_new_tokens is not None else "answer length cap (default: the official 1024; 48 for "
                        "the synthetic task, whose answers are short)")
    parser.add_argument("--sample", action="store_true",
                        help="sample as the official scripts (temperature 0.2; top_p/top_k from the checkpoint's "
                        "generation_config.json, else transformers' 1.0/50); default: greedy")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (implies --sample)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus cut (implies --sample)")
    parser.add_argument("--top-k", type=int, default=None, help="top-k cut, 0 off (implies --sample)")
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="sampling seed (runs are reproducible)")
