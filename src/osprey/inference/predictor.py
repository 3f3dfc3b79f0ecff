"""Answer questions about regions of an image.

The image is encoded once (vision tower + projector + the four feature maps), every region's
tokens come from one pass of the mask extractor, and all regions are answered in one batched,
left-padded generation with a KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from osprey.image import load_image, preprocess
from osprey.model.generation import DecodingOptions, generate
from osprey.model.osprey import OspreyModel, RegionBatch
from osprey.text.conversation import Turn, get_template
from osprey.text.render import render_conversation
from osprey.text.tokenizer import TextTokenizer

BEGIN = "<image>\nThis provides an overview of the picture.\n"
# Official demo prompts (osprey-official.md §1.8), with <region1> where the demo has <mask><pos>.
QUESTIONS = {
    "short": "Please give me a short description of <region1>. Using a short phrase.",
    "detailed": "Can you give me a detailed description of <region1>?",
    "category": "What is the category of <region1>? Using only one word or phrase.",
}


@dataclass(frozen=True)
class EncodedImage:
    levels: list[torch.Tensor]  # four (1, C_l, h_l, w_l) maps
    image_tokens: torch.Tensor  # (1, N, D)
    size: tuple[int, int]  # original (H, W)


class RegionPredictor:
    def __init__(self, model: OspreyModel, tokenizer: TextTokenizer, template: str | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = get_template(template or model.config.template)
        self.slots = model.slots

    @torch.no_grad()
    def encode(self, image: str | Path | Image.Image | np.ndarray) -> EncodedImage:
        pil = load_image(image)
        pixels = preprocess(pil, self.model.config.vision.image_size, self.model.config.vision.mean,
                            self.model.config.vision.std)[None]
        levels, tokens = self.model.encode_images(pixels)
        return EncodedImage(levels=levels, image_tokens=tokens, size=(pil.height, pil.width))

    @torch.no_grad()
    def describe(
        self,
        image: EncodedImage | str | Path | Image.Image | np.ndarray,
        masks: torch.Tensor | np.ndarray,
        question: str = "short",
        options: DecodingOptions | None = None,
    ) -> list[str]:
        """One answer per mask (R, H, W). ``question`` is a mode name or text using ``<region1>``."""
        encoded = image if isinstance(image, EncodedImage) else self.encode(image)
        masks = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks).float()
        if masks.dim() != 3 or tuple(masks.shape[-2:]) != encoded.size:
            raise ValueError(f"masks must be (R, {encoded.size[0]}, {encoded.size[1]}) to match the image, got {tuple(masks.shape)}")
        count = int(masks.shape[0])
        if count == 0:
            return []
        text = QUESTIONS.get(question, question)
        mask_tokens, pos_tokens = self.model.encode_regions(encoded.levels, RegionBatch([masks]))
        rendered = render_conversation(
            [Turn("user", BEGIN + text)], template=self.template, tokenizer=self.tokenizer, slots=self.slots,
            num_image_tokens=self.model.num_image_tokens, num_regions=1, add_generation_prompt=True,
        )
        ids = torch.tensor([rendered.input_ids] * count)  # (R, L): one sequence per region
        images = encoded.image_tokens.expand(count, -1, -1)
        embeds = self.model.embed(ids, images, mask_tokens, pos_tokens)
        result = generate(self.model, embeds, eos_id=self.tokenizer.eos_id, options=options)
        return [self.tokenizer.decode(seq).strip() for seq in result.ids]

