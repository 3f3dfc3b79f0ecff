"""Text side of Osprey: tokenizers, conversation templates, and rendering to ids + labels.

Data code imports from here; nothing in this package imports the model or training code.
"""

from osprey.text.conversation import TEMPLATES, ConversationTemplate, Turn, get_template
from osprey.text.render import (
    IGNORE_INDEX,
    ImageSlot,
    RegionSlot,
    RenderedConversation,
    Segment,
    collapse_image_slots,
    parse_official,
    parse_segments,
    render_conversation,
    render_prompt_text,
)
from osprey.text.tokenizer import (
    IMAGE_TOKEN_INDEX,
    HFTokenizer,
    SentencePieceTokenizer,
    SlotIds,
    TextTokenizer,
    llama2_tokenizer,
    load_tokenizer,
)

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_TOKEN_INDEX",
    "TEMPLATES",
    "ConversationTemplate",
    "HFTokenizer",
    "ImageSlot",
    "RegionSlot",
    "RenderedConversation",
    "Segment",
    "SentencePieceTokenizer",
    "SlotIds",
    "TextTokenizer",
    "Turn",
    "collapse_image_slots",
    "get_template",
    "llama2_tokenizer",
    "load_tokenizer",
    "parse_official",
    "parse_segments",
    "render_conversation",
    "render_prompt_text",
]
