"""The self-checking synthetic data set: the twin scores AP 1.0 on it, and breaks when decoding does."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ssd_eval.cli import main
from ssd_eval.config.run import load_config
from ssd_eval.data import categories
from ssd_eval.data.categories import COCO_CATEGORIES, LabelMap
from ssd_eval.errors import ConfigError
from ssd_eval.twin import synthetic
from ssd_eval.twin.model import ensure_twin
from ssd_eval.twin.synthetic import (
    ANNOTATIONS,
    choose_cut,
    ensure_synthetic_dataset,
    generate_synthetic_dataset,
    pixel_box,
)

# pycocotools' eps: a category with one ground-truth box scores 1 / (1 + 2.2e-16) at best.
ONE = pytest.approx(1.0, abs=1e-12)
SIZE = 600  # the smallest practical twin
NUM_IMAGES = 5  # the first five cover every mode and both formats


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def twin(cache) -> Path:
    return ensure_twin(SIZE, 0, cache / "twins")


@pytest.fixture(scope="module")
def data(twin, tmp_path_factory) -> Path:
    return generate_synthetic_dataset(
        tmp_path_factory.mktemp("synthetic"), model_path=twin, num_images=NUM_IMAGES, seed=1
    )


def _annotations(root: Path) -> dict:
    return json.loads((root / ANNOTATIONS).read_text())


def _evaluate(tmp_path: Path, twin: Path, data: Path, *extra: str, **sections) -> tuple[int, dict]:
    config = {"model": {"path": str(twin)}, "dataset": {"root": str(data)}, **sections}
    config["output"] = {"dir": str(tmp_path / "results")}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    code = main(["--config", str(tmp_path / "c.yaml"), "--run-name", "run", "--quiet", *extra])
    return code, json.loads((tmp_path / "results" / "run" / "metrics.json").read_text())


def test_generator_writes_what_it_says(data):
    coco = _annotations(data)
    assert {"info", "licenses", "images", "annotations", "categories"} <= set(coco)
    assert [(c["id"], c["name"]) for c in coco["categories"]] == list(COCO_CATEGORIES)
    modes, formats, sizes = set(), set(), set()
    for record in coco["images"]:
        with Image.open(data / "val2017" / record["file_name"]) as image:
            modes.add(image.mode)
            formats.add(image.format)
            assert image.size == (record["width"], record["height"])
            sizes.add(image.size)
    assert modes == {"RGB", "L", "P", "CMYK", "RGBA"}
    assert formats == {"PNG", "JPEG"}
    assert len(sizes) == NUM_IMAGES
    anns = coco["annotations"]
    assert all(a["iscrowd"] == 0 and a["area"] == a["bbox"][2] * a["bbox"][3] for a in anns)
    assert all(a["bbox"][2] > 0 and a["bbox"][3] > 0 for a in anns)
    assert max(Counter((a["image_id"], a["category_id"]) for a in anns).values()) <= 100
    assert len({a["image_id"] for a in anns}) >= 3
    assert len({a["category_id"] for a in anns}) >= 10, "the twin should see a mix of classes"
    assert coco["info"]["score_margin"] > 0


def test_twin_scores_ap_exactly_one(tmp_path, twin, data):
    expected = {"metric": "AP", "value": 1.0, "tolerance": 1e-9}
    code, metrics = _evaluate(tmp_path, twin, data, expected=expected)
    assert code == 0
    assert metrics["protocol"]["num_images"] == len(
        {a["image_id"] for a in _annotations(data)["annotations"]}
    )
    for name in ("AP", "AP50", "AP75", "AR100"):
        assert metrics["stats"][name] == ONE, name
    scored = [c for c in metrics["per_category"] if c["num_gt"]]
    assert len(scored) >= 10
    assert all(c["ap"] == ONE for c in scored)
    # Not vacuous: besides the ground truth the twin emits false positives, all ranked below it.
    assert metrics["num_detections"] > len(_annotations(data)["annotations"])


def test_clipping_boxes_breaks_it(tmp_path, twin, data):
    coco = _annotations(data)
    size = {r["id"]: (r["width"], r["height"]) for r in coco["images"]}
    first_two = sorted({a["image_id"] for a in coco["annotations"]})[:2]
    crossing = [
        a
        for a in coco["annotations"]
        if a["image_id"] in first_two
        and (a["bbox"][0] < -0.2 * a["bbox"][2] or a["bbox"][0] + 1.2 * a["bbox"][2] > size[a["image_id"]][0])
    ]
    assert crossing, "precondition: the twin emits ground-truth boxes that cross the image border"
    code, metrics = _evaluate(tmp_path, twin, data, "--limit", "2", decode={"clip_boxes": True})
    assert code == 0
    assert metrics["stats"]["AP"] < 0.999


def test_off_by_one_label_table_breaks_it(tmp_path, twin, data, monkeypatch):
    # Label k read as the category of label k + 1 (a 0-based lookup into the 1-based table).
    right = categories.canonical_label_map()
    shifted = np.concatenate([[-1], np.roll(right.category_ids[1:], -1)])
    monkeypatch.setattr(categories, "canonical_label_map", lambda: LabelMap(shifted, right.names))
    code, metrics = _evaluate(tmp_path, twin, data, "--limit", "2")
    assert code == 0
    assert metrics["stats"]["AP"] < 0.5


def test_independent_tables_agree_with_the_package():
    assert [synthetic.category_id_of_label(k) for k in range(1, 81)] == [cid for cid, _ in COCO_CATEGORIES]
    assert pixel_box([0.25, -0.1, 0.75, 0.5], 200, 100) == [50.0, -10.0, 100.0, 60.0]


def test_choose_cut_takes_the_middle_of_the_widest_gap():
    assert choose_cut([0.1, 0.2, 0.8, 0.9]) == pytest.approx((0.5, 0.3))
    assert choose_cut([0.1, 0.2, 0.8, 0.9], 0.85) == pytest.approx((0.85, 0.05))
    cut, _ = choose_cut(list(np.linspace(0.06, 0.99, 200)))
    assert 0.3 < cut < 0.7


def test_ensure_builds_once_and_rebuilds_when_stale(cache, twin, monkeypatch):
    calls: list[Path] = []

    def fake_generate(root: Path, *, model_path: Path) -> Path:
        calls.append(model_path)
        (root / ANNOTATIONS).parent.mkdir(parents=True)
        (root / ANNOTATIONS).write_text("{}")
        return root

    monkeypatch.setattr(synthetic, "generate_synthetic_dataset", fake_generate)
    root = ensure_synthetic_dataset(f"synthetic-{SIZE}", cache=cache)
    assert root == cache / "synthetic" / f"synthetic-{SIZE}"
    assert (root / ANNOTATIONS).is_file() and calls == [twin]
    assert ensure_synthetic_dataset(f"synthetic-{SIZE}", cache=cache) == root and len(calls) == 1
    (root / synthetic.MARKER).write_text('{"sha256": "an older twin"}')
    assert ensure_synthetic_dataset(f"synthetic-{SIZE}", cache=cache) == root and len(calls) == 2
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary folders left
    with pytest.raises(ConfigError, match="synthetic-<twin image size>"):
        ensure_synthetic_dataset("synthetic-big", cache=cache)


def test_smoke_config_is_the_offline_self_check():
    config = load_config("smoke.yaml")
    assert config.model.source == f"twin-{SIZE}" and config.dataset.source == f"synthetic-{SIZE}"
    assert config.expected is not None and config.expected.value == 1.0
    assert config.expected.tolerance <= 1e-6
