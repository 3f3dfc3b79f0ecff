import numpy as np
import pytest

from osprey.eval import segmentation_metrics as seg


def test_mean_iou_on_a_tiny_label_map():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [255, 255, 2, 2]])
    pred = np.array([[0, 0, 0, 1], [0, 0, 1, 1], [1, 1, 2, 1]])
    m = seg.mean_iou(seg.confusion_matrix(pred, gt, 3))
    # class 0: tp 4, gt 4, pred 5 -> 4/5; class 1: tp 3, gt 4, pred 4 -> 3/5; class 2: tp 1, gt 2, pred 1 -> 1/2
    assert m["mIoU"] == pytest.approx((0.8 + 0.6 + 0.5) / 3 * 100)
    assert m["pAcc"] == pytest.approx(8 / 10 * 100)


def test_pq_hand_computed():
    gt = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3], [3, 3, 3, 0]])
    pred = np.array([[1, 1, 1, 2], [1, 1, 2, 2], [3, 3, 3, 3], [3, 3, 4, 4]])
    gt_segments = [seg.Segment(1, 0, True), seg.Segment(2, 0, True), seg.Segment(3, 1, False)]
    pred_segments = [seg.Segment(1, 0, True), seg.Segment(2, 0, True), seg.Segment(3, 1, False),
                     seg.Segment(4, 0, True)]
    stats = {}
    seg.pq_update(stats, pred, pred_segments, gt, gt_segments)
    # class 0: gt1/pred1 IoU 4/5, gt2/pred2 IoU 3/4; pred 4: half of it is void -> not FP ... 1/2 is not > 1/2: FP
    assert stats[0].tp == 2 and stats[0].fp == 1 and stats[0].fn == 0
    # class 1: gt3 (7 px) vs pred3 (6 px), inter 6 -> 6/7
    assert stats[1].tp == 1 and stats[1].fp == 0
    out = seg.pq_summary(stats, [True, False])
    pq0 = (0.8 + 0.75) / (2 + 0.5)
    assert out["PQ"] == pytest.approx((pq0 + 6 / 7) / 2 * 100)
    assert out["PQ_th"] == pytest.approx(pq0 * 100)


def test_panoptic_inference_merges_stuff_and_drops_overlapped_masks():
    masks = np.zeros((3, 2, 4), dtype=bool)
    masks[0, :, :2] = True
    masks[1, :, 2:] = True
    masks[2, :, 1:] = True  # overlaps both; its score is lowest so it keeps < 80 % -> dropped
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    pan, segments = seg.panoptic_inference(probs, masks, thing_classes=[False, True])
    assert [s.category for s in segments] == [0]  # both stuff masks of class 0 merged into one segment
    assert (pan == 1).all()


def test_mask_ap_hand_values():
    m1 = np.zeros((8, 8), bool)
    m1[:4, :4] = True
    m2 = np.zeros((8, 8), bool)
    m2[4:, 4:] = True
    gt = [(1, 0, m1, False)]
    assert seg.mask_ap(gt, [(1, 0, m1, 0.9), (1, 0, m2, 0.5)], {1: (8, 8)}, [0])["AP"] == pytest.approx(100.0)
    # The false positive ranked first: precision 1/2 at recall 1 everywhere -> AP 50.
    assert seg.mask_ap(gt, [(1, 0, m1, 0.5), (1, 0, m2, 0.9)], {1: (8, 8)}, [0])["AP"] == pytest.approx(50.0)


def test_instance_inference_keeps_top_thing_pairs():
    probs = np.array([[0.6, 0.4], [0.1, 0.9]])
    assert seg.instance_inference(probs, [True, False], top_k=3) == [(0, 0, 0.6)]
