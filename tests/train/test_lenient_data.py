"""data_strictness: lenient repairs what the official trains on (each repair counted); a mask/image
size mismatch is counted under its own reason."""

from __future__ import annotations

from collections import Counter

from osprey.data.dataset import MASK_SIZE_MISMATCH, TOO_LONG, DataStats, MaskSizeError, RegionDataset, Skipped
from osprey.data.lenient import repair_record
from osprey.masks import check


def test_short_polygons_and_outside_coordinates_are_repaired_and_counted():
    record = {"file_name": "a.jpg", "height": 20, "width": 30, "annotation": [
        {"segmentation": [[1, 1, 5, 5]]}, {"segmentation": [[-9, 0, 10, 0, 10, 25]]}, {"segmentation": [[2, 2, 8, 2, 8, 8]]}]}
    counts: Counter[str] = Counter()
    fixed = repair_record(record, "osprey_short_form", counts)
    assert counts == {"short_polygon": 1, "coords_clipped": 1}
    assert fixed["annotation"][0]["segmentation"] == [[1, 1, 5, 5, 5, 5]]
    assert fixed["annotation"][1]["segmentation"] == [[0.0, 0, 10, 0, 10, 20.0]]
    assert record["annotation"][0]["segmentation"] == [[1, 1, 5, 5]]  # the original is untouched
    for ann in fixed["annotation"]:  # the repaired polygons pass the strict checks
        check("polygon", ann["segmentation"], 20, 30)


def test_lvis_mentions_are_renumbered_in_order_of_appearance():
    record = {"annotation": [{}, {}], "conversations": [
        {"from": "human", "value": "Is <region2> a cat?"}, {"from": "gpt", "value": "yes"},
        {"from": "human", "value": "And <region1>?"}, {"from": "gpt", "value": "no"}]}
    counts: Counter[str] = Counter()
    fixed = repair_record(record, "osprey_lvis_positive_negative", counts)
    assert [t["value"] for t in fixed["conversations"]] == ["Is <region1> a cat?", "yes", "And <region2>?", "no"]
    assert counts == {"lvis_mentions_renumbered": 1}


def test_repairs_are_summed_into_the_run_statistics():
    stats = DataStats()
    stats.merge_dict({"repaired": {"short_polygon": 2}})
    other = DataStats()
    other.repaired.update({"short_polygon": 1, "coords_clipped": 1})
    stats.merge(other)
    assert stats.to_dict()["repaired"] == {"short_polygon": 3, "coords_clipped": 1}


def test_a_mask_image_size_mismatch_is_not_counted_as_too_long():
    class Raising:
        def __call__(self, sample, root):
            raise MaskSizeError("masks are (4, 4) but the image is (5, 5)")

    dataset = RegionDataset.__new__(RegionDataset)
    dataset.transform = Raising()
    dataset.sample = lambda i: type("S", (), {"sample_id": "x"})()
    dataset._index = [(0, 0)]
    dataset._entries = [type("E", (), {"image_root": "."})()]
    skipped = dataset[0]
    assert isinstance(skipped, Skipped) and skipped.reason == MASK_SIZE_MISMATCH != TOO_LONG
