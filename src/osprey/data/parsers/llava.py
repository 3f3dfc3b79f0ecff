"""Image-level conversations in the LLaVA layout: the stage-1 (image-text alignment) source.

Osprey's stage 1 is LLaVA-1.5's projector pre-training on LCS-558K (``blip_laion_cc_sbu_558k.json``),
a JSON list of ``{"id", "image": "relative/path.jpg", "conversations": [{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": "..."}]}``. No regions: these samples train the image
tokens only. The synthetic world writes its captions in the same layout (``llava_captions.json``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from osprey.data.errors import CONVERSATION, RecordError
from osprey.data.parsers.base import Parser, get, load_json_list, make_sample, non_empty_text, save_json_list
from osprey.data.sample import ImageRef, Sample

_ROLES = {"human": "user", "gpt": "assistant"}


def parse_llava(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    image = get(record, "image", str, index)
    conversation = get(record, "conversations", list, index)
    if not conversation or len(conversation) % 2:
        raise RecordError(
            CONVERSATION, f"{len(conversation)} conversation entries; expected a non-zero even number", index
        )
    texts = []
    for i, turn in enumerate(conversation):
        expected = "human" if i % 2 == 0 else "gpt"
        if not isinstance(turn, Mapping) or turn.get("from") != expected:
            got = turn.get("from") if isinstance(turn, Mapping) else type(turn).__name__
            raise RecordError(CONVERSATION, f"entry {i} is from {got!r}; expected {expected!r}", index)
        texts.append(non_empty_text(turn.get("value"), index, f"conversations[{i}].value"))
    if "<image>" not in texts[0]:
        raise RecordError(CONVERSATION, "the first human turn has no '<image>'; expected one", index)
    height, width = record.get("height"), record.get("width")
    return [
        make_sample(
            source="llava",
            task="caption",
            index=index,
            image=ImageRef(image, height if isinstance(height, int) else None, width if isinstance(width, int) else None),
            regions=(),
            texts=texts,
            meta={"id": record.get("id")},
        )
    ]


PARSERS = {
    "llava": Parser(
        name="llava",
        task="caption",
        load=load_json_list,
        parse=parse_llava,
        save=save_json_list,
        description="LLaVA-format image conversations (stage 1: LCS-558K, synthetic captions)",
    )
}
