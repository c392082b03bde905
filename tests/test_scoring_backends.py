"""faster-coco-eval gives pycocotools' 12 stats (to 1e-12) on a generated val2017-shaped set."""

from __future__ import annotations

import pytest

from ssd_eval.data.categories import check_categories
from ssd_eval.evaluation.scoring import score
from ssd_eval.twin.fake_detections import make_fake_set

pytest.importorskip("faster_coco_eval")


def test_faster_coco_eval_matches_pycocotools():
    fake = make_fake_set(250, detections_per_image=60, empty_images=3, seed=3)
    label_map = check_categories(fake.coco_json["categories"], source="generated")
    kwargs = {"image_ids": fake.image_ids, "label_map": label_map}
    ref = score(fake.coco_json, fake.detections, backend="pycocotools", **kwargs)
    fast = score(fake.coco_json, fake.detections, backend="faster-coco-eval", **kwargs)
    assert 0.05 < ref.stats["AP"] < 0.9  # a non-trivial result
    assert fast.stats.keys() == ref.stats.keys()
    for name, value in ref.stats.items():
        assert fast.stats[name] == pytest.approx(value, abs=1e-12), name
    assert fast.num_detections == ref.num_detections == 250 * 60
    for a, b in zip(ref.per_category, fast.per_category, strict=True):
        assert (a.category_id, a.num_gt, a.num_det) == (b.category_id, b.num_gt, b.num_det)
        assert (a.ap is None) == (b.ap is None)
        if a.ap is not None:
            assert b.ap == pytest.approx(a.ap, abs=1e-12)
            assert b.ap50 == pytest.approx(a.ap50, abs=1e-12)


def test_both_backends_score_zero_detections_as_zero():
    fake = make_fake_set(5, detections_per_image=2, empty_images=0)
    label_map = check_categories(fake.coco_json["categories"], source="generated")
    for backend in ("pycocotools", "faster-coco-eval"):
        result = score(fake.coco_json, [], image_ids=fake.image_ids, label_map=label_map, backend=backend)
        assert result.stats["AP"] == 0.0 and result.stats["AR100"] == 0.0 and result.num_detections == 0
