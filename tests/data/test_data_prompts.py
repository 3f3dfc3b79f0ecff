"""osprey.data.prompts: official template strings, verbatim (typos included)."""

from __future__ import annotations

from osprey.data import prompts


def test_template_counts_match_the_official_lists() -> None:
    assert len(prompts.DETAILED_QUESTIONS) == 30
    assert len(prompts.VG_QUESTIONS) == 24
    assert len(prompts.VCR_WHY_QUESTIONS) == 39
    assert len(prompts.VCR_REGION_INTROS) == 7
    assert all(
        "<region>" in q for q in prompts.DETAILED_QUESTIONS + prompts.VG_QUESTIONS + prompts.VCR_REGION_INTROS
    )
    assert "ablout" in prompts.DETAILED_QUESTIONS[24] and "represtented" in prompts.DETAILED_QUESTIONS[28]


def test_region_count_sentence_singular_and_plural() -> None:
    assert (
        prompts.region_count_sentence(["<region1>"])
        == "Ther are 1 part region in the picture: region1<region1>. "
    )
    assert (
        prompts.region_count_sentence(["<region1>", "<region2>"])
        == "Ther are 2 part regions in the picture: region1<region1>,region2<region2>. "
    )


def test_part_instructions_verbatim_after_image_normalisation() -> None:
    pascal = prompts.normalize_image_turn(prompts.PASCAL_PART_BEGIN + "<mask><pos>")
    assert pascal == (
        "<image>\nIn the conversation below, you simply answer the category and subcategory name based on what "
        "you seein the image inside a particular region. It maybe a subpart of an object. I will give you only "
        "one region each time. Your answer should in the format of category:subcategory. Categories Containing "
        "potted plant, aeroplane, cow, cat, bus, horse, car, dog, bicycle, person, bird, bottle, sheep, motorbike. "
        "Subcategories Containing eye,window,cap,headlight,hand,mirror,arm,plant,wheel,ear,pot,foot,leg,nose,body,"
        "horn,handlebar,neck,license plate,paw,saddle,head,muzzle,tail,wing,beak,hair,torso,door,mouth.\n<mask><pos>"
    )
    assert prompts.PART_IMAGENET_BEGIN == (
        "<image>\nIn the conversation below, you simply answer the category and subcategory name based on what "
        "you seein the image inside a particular region. It maybe a subpart of an object. I will give you only "
        "one region each time. Your answer should in the format of category subcategory. Categories Containing "
        "Bottle, Biped, Quadruped, Fish, Reptile, Bicycle, Bird, Car, Boat, Snake, Aeroplane. "
        "Subcategories Containing Tier,Hand,Wing,Mouth,Tail,Side,Fin,Engine,Foot,Head,Body,Sail,Seat.\n"
    )


def test_image_normalisation_is_the_official_one() -> None:
    assert prompts.normalize_image_turn(prompts.VCR_BEGIN + "x") == (
        "<image>\n.\nThis provides an overview of the picture.\nx"
    )
    assert prompts.normalize_image_turn("<image>\nquestion  \n") == "<image>\nquestion"
    assert prompts.normalize_image_turn("no image here ") == "no image here "
    assert prompts.vcr_region_listing(["<region1>", "<region2>"]) == "region1 <region1>,region2 <region2>"
