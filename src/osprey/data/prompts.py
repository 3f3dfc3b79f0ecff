"""Training prompt strings of the official Osprey loaders, verbatim (typos included).

The typos ("Ther are", "part region" for whole objects, "ablout", "represtented", "attibuts",
"seein", "should in the format") are part of the distribution the released checkpoints were trained
on, so they are kept. Where the official template holds ``<mask><pos>`` or ``<region>`` for a
region, the builders here take the region tag (``<regionK>``) to put there.
"""

from __future__ import annotations

from collections.abc import Sequence

# The image prefixes are shared with inference and eval, so they live in osprey.text.prompts
# (OVERVIEW is re-exported here for the parsers).
from osprey.text.prompts import OVERVIEW as OVERVIEW
from osprey.text.prompts import VCR_OVERVIEW

# --- Osprey-724K (osprey_724k.py) ------------------------------------------------------------------
SHORT_ANSWER_LIMIT = " Answer the question using a single word or phrase."

DETAILED_QUESTIONS: tuple[str, ...] = (
    "Can you provide me with a detailed description of the region in the picture marked by <region>?",
    "I'm curious about the region represented by <region> in the picture. Could you describe it in detail?",
    "What can you tell me about the region indicated by <region> in the image?",
    "I'd like to know more about the area in the photo labeled <region>. Can you give me a detailed description?",
    "Could you describe the region shown as <region> in the picture in great detail?",
    "What details can you give me about the region outlined by <region> in the photo?",
    "Please provide me with a comprehensive description of the region marked with <region> in the image.",
    "Can you give me a detailed account of the region labeled as <region> in the picture?",
    "I'm interested in learning more about the region represented by <region> in the photo. Can you describe it in detail?",
    "What is the region outlined by <region> in the picture like? Could you give me a detailed description?",
    "Can you provide me with a detailed description of the region in the picture marked by <region>, please?",
    "I'm curious about the region represented by <region> in the picture. Could you describe it in detail, please?",
    "What can you tell me about the region indicated by <region> in the image, exactly?",
    "I'd like to know more about the area in the photo labeled <region>, please. Can you give me a detailed description?",
    "Could you describe the region shown as <region> in the picture in great detail, please?",
    "What details can you give me about the region outlined by <region> in the photo, please?",
    "Please provide me with a comprehensive description of the region marked with <region> in the image, please.",
    "Can you give me a detailed account of the region labeled as <region> in the picture, please?",
    "I'm interested in learning more about the region represented by <region> in the photo. Can you describe it in detail, please?",
    "What is the region outlined by <region> in the picture like, please? Could you give me a detailed description?",
    "Please describe the region <region> in the image in detail.",
    "Can you offer a thorough analysis of the region <region> in the image?",
    "Could you elaborate on the region highlighted by <region> in the picture provided?",
    "Please share more information about the zone emphasized with <region> in the photo.",
    "What insights can you give ablout the area denoted by <region> in the image presented?",
    "Can you share a comprehensive rundown of the region denoted by <region> in the presented image?",
    "I'd like to know more about the region highlighted by <region> in the picture provided.",
    "Work through the important details of the area <region> in the image.",
    "Illustrate the area represtented by <region> through a descriptive explanation.",
    "Examine the region <region> closely and share its details.",
)


def region_count_sentence(region_tags: Sequence[str]) -> str:
    """``"Ther are N part regions in the picture: region1<region1>,region2<region2>. "`` (official)."""
    listing = ",".join(f"region{k}{tag}" for k, tag in enumerate(region_tags, start=1))
    n = len(region_tags)
    if n == 1:
        return f"Ther are 1 part region in the picture: {listing}. "
    return f"Ther are {n} part regions in the picture: {listing}. "


# --- Stage 2 (stage2_data.py) ----------------------------------------------------------------------
COCO_CATEGORY_BEGIN = (
    "<image>\nIn the conversation below, you simply answer the category name based on what you see "
    "in the imagery inside a particular region. I will give you only one region each time.\n"
)

REFCOCO_BEGIN = (
    "<image>\nI will provide you with only one region "
    "containing only one object, although there may be other "
    "objects present in the image. It is recommended that you "
    "describe the object's relative position with respect to other "
    "objects in the image, as well as its position within "
    "the image and its basic attributes."
)

REFCOCO_PLUS_BEGIN = (
    "<image>\nI will provide you with only one region "
    "containing only one object, although there may be other "
    "objects present in the image. It is recommended that you "
    "describe the object's relative position with respect to other "
    "objects in the image and its basic attibuts, you should not "
    "give its position within the image."
)

PART_IMAGENET_CATEGORIES: tuple[str, ...] = (
    "Bottle", "Biped", "Quadruped", "Fish", "Reptile", "Bicycle", "Bird", "Car", "Boat", "Snake", "Aeroplane",
)  # fmt: skip
PART_IMAGENET_SUBCATEGORIES: tuple[str, ...] = (
    "Tier", "Hand", "Wing", "Mouth", "Tail", "Side", "Fin", "Engine", "Foot", "Head", "Body", "Sail", "Seat",
)  # fmt: skip
PASCAL_PART_CATEGORIES: tuple[str, ...] = (
    "potted plant", "aeroplane", "cow", "cat", "bus", "horse", "car",
    "dog", "bicycle", "person", "bird", "bottle", "sheep", "motorbike",
)  # fmt: skip
PASCAL_PART_SUBCATEGORIES: tuple[str, ...] = (
    "eye", "window", "cap", "headlight", "hand", "mirror", "arm", "plant",
    "wheel", "ear", "pot", "foot", "leg", "nose", "body", "horn", "handlebar",
    "neck", "license plate", "paw", "saddle", "head", "muzzle", "tail", "wing",
    "beak", "hair", "torso", "door", "mouth",
)  # fmt: skip


def _part_begin(
    lead: str, answer_format: str, categories: Sequence[str], subcategories: Sequence[str]
) -> str:
    # Official: no space in "what you see" + "in the image" ("seein") and ","-joined subcategories.
    return (
        lead
        + "In the conversation below, you simply answer the category and subcategory name based on what you see"
        + "in the image inside a particular region. It maybe a subpart of an object. "
        + "I will give you only one region each time. Your answer should in the format of "
        + answer_format
        + ". "
        + "Categories Containing "
        + ", ".join(categories)
        + ". "
        + "Subcategories Containing "
        + ",".join(subcategories)
        + ".\n"
    )


# The PascalPart string starts "<image>\n In ..." officially; the leading space is stripped when the
# image token is normalised (see ``normalize_image_turn``), so both spellings train identically.
PART_IMAGENET_BEGIN = _part_begin(
    "<image>\n", "category subcategory", PART_IMAGENET_CATEGORIES, PART_IMAGENET_SUBCATEGORIES
)
PASCAL_PART_BEGIN = _part_begin(
    "<image>\n ", "category:subcategory", PASCAL_PART_CATEGORIES, PASCAL_PART_SUBCATEGORIES
)

# --- Visual Genome (vg.py) -------------------------------------------------------------------------
VG_LIMIT = " Answer the question using a short phrase."
VG_QUESTIONS: tuple[str, ...] = (
    "Give me a short description of <region>.",
    "Can you give me a short description of <region>?",
    "Can you provide me with a short description of the region in the picture marked by <region>?",
    "I'm curious about the region represented by <region> in the picture. Could you describe it in few words?",
    "What can you tell me about the region indicated by <region> in the image in few words?",
    "I'd like to know more about the area in the photo labeled <region>. Can you give me a concise description?",
    "Could you describe the region shown as <region> in the picture concisely?",
    "What can you give me about the region outlined by <region> in the photo?",
    "Please provide me with a brief description of the region marked with <region> in the image.",
    "Can you give me a brief introduction of the region labeled as <region> in the picture?",
    "I'm interested in knowing the region represented by <region> in the photo. Can you describe it in several words?",
    "What is the region outlined by <region> in the picture like? Could you give me a streamlined description?",
    "Can you provide me with a brief description of the region in the picture marked by <region>, please?",
    "I'm curious about the region represented by <region> in the picture. Could you describe it in few words, please?",
    "What can you tell me about the region indicated by <region> in the image?",
    "I'd like to know more about the area in the photo labeled <region>, please. Can you give me a simple description?",
    "Could you describe the region shown as <region> in the picture in several words?",
    "Please provide me with a simple description of the region marked with <region> in the image, please.",
    "I'm interested in learning more about the region represented by <region> in the photo. Can you describe it in few words, please?",
    "What is the region outlined by <region> in the picture like, please? Could you give me a simple and clear description?",
    "Please describe the region <region> in the image concisely.",
    "Can you offer a simple analysis of the region <region> in the image?",
    "Could tell me something about the region highlighted by <region> in the picture briefly?",
    "Can you share a simple rundown of the region denoted by <region> in the presented image?",
)

# --- VCR (vcr.py) ----------------------------------------------------------------------------------
# Officially "<image>.\nThis provides ..."; normalising the image token turns it into
# "<image>\n.\nThis provides ..." (the stray "." is in the training data).
VCR_BEGIN = VCR_OVERVIEW
VCR_REGION_INTROS: tuple[str, ...] = (
    "There are <region> in the image,",
    "There are some regions <region>,",
    "Given <region>,",
    "Given <region> in the image,",
    "<region>,",
    "Several regions <region> are in the image,",
    "<region> in the given image,",
)
VCR_WHY_QUESTIONS: tuple[str, ...] = (
    "why?",
    "why",
    "What's the rationale for your decision?",
    "What led you to that conclusion?",
    "What's the reasoning behind your opinion?",
    "Why do you believe that to be true?",
    "Can you explain the basis for your thinking?",
    "What factors influenced your perspective?",
    "How did you arrive at that perspective?",
    "What evidence supports your viewpoint?",
    "What makes you think that way?",
    "What's the logic behind your argument?",
    "Can you provide some context for your opinion?",
    "What's the basis for your assertion?",
    "Why do you hold that belief?",
    "What experiences have shaped your perspective?",
    "What assumptions underlie your reasoning?",
    "What's the foundation of your assertion?",
    "What's the source of your reasoning?",
    "What's the motivation behind your decision?",
    "What's the impetus for your belief?",
    "What's the driving force behind your conclusion?",
    "Why do you think that?",
    "What's your reasoning?",
    "What makes you say that?",
    "Why do you feel that way?",
    "What's the story behind that?",
    "What's your thought process?",
    "What's the deal with that?",
    "What's the logic behind it?",
    "Why do you believe that?",
    "What's the real deal here?",
    "What's the reason behind it?",
    "What's the thought process behind your decision?",
    "What's the rationale for your opinion?",
    "Why do you have that impression?",
    "What's the background to that?",
    "What's the evidence that supports your view?",
    "What's the explanation for that?",
)


def vcr_region_listing(region_tags: Sequence[str]) -> str:
    """``"region1 <region1>,region2 <region2>"`` (official: ``region{i} <mask><pos>`` joined by ",")."""
    return ",".join(f"region{k} {tag}" for k, tag in enumerate(region_tags, start=1))


# --------------------------------------------------------------------------------------------------


def normalize_image_turn(text: str) -> str:
    """What the official ``preprocess_multimodal`` does to a turn holding ``<image>``.

    It removes ``<image>``, strips, re-prefixes ``"<image>\\n"`` and strips again, so leading and
    trailing whitespace of the first turn never reaches the model.
    """
    if "<image>" not in text:
        return text
    return ("<image>\n" + text.replace("<image>", "").strip()).strip()
