"""The official demo's behaviour for official checkpoints; ours for models trained here."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from osprey.inference.demo import OFFICIAL, OURS, demo_style, downscale_for_demo, official_demo_answer
from osprey.text.prompts import DEMO_OVERVIEW, OVERVIEW


def test_official_post_processing_splits_at_colons_and_stops_at_the_first_repeated_sentence():
    assert official_demo_answer(" region1: a red car. It is parked. a red car. more</s>") == " a red car. It is parked."
    assert official_demo_answer("a dog. a dog. a dog.") == "a dog. a dog."  # " a dog" != "a dog": exact compare
    assert official_demo_answer("a cat") == "a cat."  # (the official adds the '.' back to every sentence)


def test_images_taller_than_512_are_downscaled_as_the_demo_does():
    tall = np.zeros((1024, 300, 3), dtype=np.uint8)
    assert downscale_for_demo(tall).shape == (512, 150, 3)
    small = np.zeros((512, 2000, 3), dtype=np.uint8)
    assert downscale_for_demo(small) is small


def test_auto_picks_official_for_official_checkpoints_only():
    assert demo_style(SimpleNamespace(official_checkpoint=True)) is OFFICIAL
    assert demo_style(SimpleNamespace()) is OURS
    assert OFFICIAL.prefix == DEMO_OVERVIEW == "<image>\n\nThis provides an overview of the picture.\n"
    assert OURS.prefix == OVERVIEW and not OFFICIAL.multimask_click and OURS.multimask_click
    assert demo_style(SimpleNamespace(), "official") is OFFICIAL
    with pytest.raises(ValueError, match="demo style"):
        demo_style(SimpleNamespace(), "x")


def test_one_sam_mask_per_click_in_the_official_style():
    from osprey.inference.providers.sam import _PromptedProvider

    calls = []

    class Fake(_PromptedProvider):
        def _set_image(self, rgb):
            pass

        def _predict(self, points, labels, box, multimask):
            calls.append(multimask)
            return np.ones((3 if multimask else 1, 8, 8), dtype=bool), np.ones(3 if multimask else 1)

    image = np.zeros((8, 8, 3), dtype=np.uint8)
    Fake().from_points(image, [[2, 2]])
    Fake(multimask_click=False).from_points(image, [[2, 2]])
    assert calls == [True, False]


def test_openseg_generates_under_fp16_autocast_on_cuda_only():
    import torch

    from osprey.eval.runner import generation_autocast
    from osprey.eval.tasks.openseg import OpenVocabSegmentation

    task = SimpleNamespace(autocast_fp16=OpenVocabSegmentation.autocast_fp16)
    assert task.autocast_fp16
    context = generation_autocast(task, SimpleNamespace(device=torch.device("cpu")))
    assert not isinstance(context, torch.autocast)
    if torch.cuda.is_available():
        assert isinstance(generation_autocast(task, SimpleNamespace(device=torch.device("cuda"))), torch.autocast)
