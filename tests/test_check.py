"""`ssd-eval check` as a library call (`ssd_eval.engine.check.check_inputs`): what the checks saw, counted
by hand on tests/conftest.py's tiny set, and the one error naming the first problem.

The tiny set: 6 images (ids 1, 2, 5, 7, 9, 11), 5 of them annotated, 7 annotations, the 80 COCO
categories; image 1 (64x48, the first by id) holds a person and a dog, so the perfect detector
emits 2 detections there, each scoring 0.9.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import TINY_GT
from helpers import save_table_detector
from test_faults_cli import png_header

from ssd_eval.config.run import ProviderConfig, RunConfig, config_from_dict
from ssd_eval.data.dataset import Shard
from ssd_eval.engine.check import CheckReport, DataCheck, ModelCheck, check_inputs
from ssd_eval.errors import ConfigError, DatasetError
from ssd_eval.pipeline.graph_preprocess import GraphPreprocessor


@pytest.fixture
def perfect(tmp_path: Path, tiny_coco: Path) -> Path:
    return save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)


def _config(tmp_path: Path, model_file: Path, root: Path, **sections: dict) -> RunConfig:
    tree: dict = {"model": {"path": str(model_file)}, "dataset": {"root": str(root)}}
    for key, value in sections.items():
        tree[key] = {**tree.get(key, {}), **value}
    return config_from_dict(tree, base_dir=tmp_path)


def _data(root: Path, selection: str, images: int) -> DataCheck:
    return DataCheck(
        annotation_file=root / "annotations" / "instances_val2017.json",
        image_dir=root / "val2017",
        selection=selection,
        images=images,
        total_images=6,
        annotations=7,
        categories=80,
    )


def test_check_sees_the_data_and_runs_the_first_image(tmp_path, tiny_coco, perfect):
    report = check_inputs(_config(tmp_path, perfect, tiny_coco))
    model = ModelCheck(
        model=perfect,
        input_size=(32, 32),
        providers_used=("CPUExecutionProvider",),
        first_image="000000000001.png",
        detections=2,
    )
    assert report == CheckReport(data=_data(tiny_coco, "annotated", 5), model=model)


def test_the_data_alone_needs_no_model(tmp_path, tiny_coco):
    config = _config(tmp_path, tmp_path / "absent.onnx", tiny_coco, dataset={"selection": "all"})
    assert check_inputs(config, check_model=False) == CheckReport(data=_data(tiny_coco, "all", 6), model=None)


def test_the_images_checked_are_the_runs(tmp_path, tiny_coco):
    """A shard, a limit and an id list select the images a run of them would evaluate."""
    config = _config(tmp_path, tmp_path / "absent.onnx", tiny_coco)
    # Shard 2 of 2 of the annotated 1, 2, 5, 7, 9: images 2 and 7.
    assert check_inputs(config, check_model=False, shard=Shard(1, 2)).data.images == 2
    limited = _config(tmp_path, tmp_path / "absent.onnx", tiny_coco, dataset={"limit": 3})
    assert check_inputs(limited, check_model=False).data.images == 3
    (tmp_path / "ids.txt").write_text("9\n2\n")
    listed = _config(tmp_path, tmp_path / "absent.onnx", tiny_coco, dataset={"image_ids": "ids.txt"})
    assert check_inputs(listed, check_model=False).data.images == 2


def test_the_first_problem_is_raised_counting_the_others(tmp_path, tiny_coco):
    val = tiny_coco / "val2017"
    (val / "000000000005.png").unlink()
    config = _config(tmp_path, tmp_path / "absent.onnx", tiny_coco)
    with pytest.raises(DatasetError) as raised:
        check_inputs(config, check_model=False)
    assert str(raised.value) == f"image {val / '000000000005.png'} not found"
    (val / "000000000009.png").unlink()
    with pytest.raises(DatasetError) as raised:
        check_inputs(config, check_model=False)
    assert str(raised.value) == (
        f"image {val / '000000000005.png'} not found (1 more of the 5 images have problems)"
    )


def test_the_pixel_limit_is_the_configs(tmp_path, tiny_coco):
    """Images 5 (120x90 = 10,800 pixels) and 9 (96x64 = 6,144) are over 5,000; 1, 2 and 7 are not."""
    config = _config(tmp_path, tmp_path / "absent.onnx", tiny_coco, dataset={"max_image_pixels": 5000})
    with pytest.raises(DatasetError) as raised:
        check_inputs(config, check_model=False)
    assert str(raised.value) == (
        f"image {tiny_coco / 'val2017' / '000000000005.png'} is 120x90 = 10,800 pixels, more than "
        "dataset.max_image_pixels (5,000): raise that setting if the image is genuine, or set "
        "dataset.on_bad_image: skip (1 more of the 5 images have problems)"
    )
    # The same limit over images 1 and 2 only (3,072 and 4,000 pixels): the check passes.
    config = _config(
        tmp_path,
        tmp_path / "absent.onnx",
        tiny_coco,
        dataset={"max_image_pixels": 5000, "limit": 2},
    )
    assert check_inputs(config, check_model=False).data.images == 2


def test_the_model_check_uses_the_configs_pipeline(tmp_path, tiny_coco, perfect):
    # In-graph preprocessing: the same first image, the same two detections.
    graph = _config(tmp_path, perfect, tiny_coco, preprocess={"backend": "onnx-normalize"})
    model = check_inputs(graph).model
    assert model is not None and (model.input_size, model.detections) == ((32, 32), 2)
    # The config's decoding: a threshold over the detector's 0.9 keeps none.
    strict = _config(tmp_path, perfect, tiny_coco, decode={"score_threshold": 0.95})
    model = check_inputs(strict).model
    assert model is not None and model.detections == 0
    # A size the model does not take is the run's own refusal.
    wrong = _config(tmp_path, perfect, tiny_coco, preprocess={"size": 64})
    with pytest.raises(ConfigError) as raised:
        check_inputs(wrong)
    assert str(raised.value) == (
        f"preprocess.size 64 does not match the input of {perfect} (32x32); remove preprocess.size to use "
        "the model's own size"
    )


def test_the_model_check_opens_the_session_with_the_configs_names(tmp_path, tiny_coco):
    """A model whose input and outputs have other names than the defaults, named in model.input/outputs."""
    names = ("pixels", "boxes", "classes", "confidences")
    model = save_table_detector(tmp_path / "renamed.onnx", tiny_coco, TINY_GT, names=names)
    outputs = {"boxes": "boxes", "labels": "classes", "scores": "confidences"}
    config = _config(tmp_path, model, tiny_coco, model={"input": "pixels", "outputs": outputs})
    checked = check_inputs(config).model
    assert checked is not None and checked.detections == 2


def test_in_graph_resizing_feeds_the_model_its_size(tmp_path, tiny_coco, perfect):
    """onnx-resize: the host sends the image at its own size (64x48) and the graph resizes it to 32x32."""
    config = _config(tmp_path, perfect, tiny_coco, preprocess={"backend": "onnx-resize"})
    checked = check_inputs(config).model
    assert checked is not None and (checked.input_size, checked.detections) == ((32, 32), 2)


def test_the_preprocessing_session_gets_the_providers_options(tmp_path, tiny_coco, perfect, monkeypatch):
    given: list[list[dict]] = []
    real_init = GraphPreprocessor.__init__

    def recording(self, model_bytes, providers, provider_options, session):  # type: ignore[no-untyped-def]
        given.append([dict(o) for o in provider_options])
        real_init(self, model_bytes, providers, provider_options, session)

    monkeypatch.setattr(GraphPreprocessor, "__init__", recording)
    options = {"arena_extend_strategy": "kSameAsRequested"}
    config = _config(tmp_path, perfect, tiny_coco, preprocess={"backend": "onnx-normalize"})
    config = dataclasses.replace(config, providers=(ProviderConfig(name="cpu", options=options),))
    check_inputs(config)
    assert given == [[options]]


def test_the_first_image_is_read_with_the_configs_pixel_limit(tmp_path, tiny_coco, perfect):
    """Image 1 declares 10000x9000 = 90,000,000 pixels, over Pillow's 89,478,485 but within a limit of
    100,000,000: read with that limit it gets as far as decoding (its pixel data is cut short)."""
    path = tiny_coco / "val2017" / "000000000001.png"
    path.write_bytes(png_header(10000, 9000))
    annotations = tiny_coco / "annotations" / "instances_val2017.json"
    data = json.loads(annotations.read_text())
    data["images"][0].update(width=10000, height=9000)
    annotations.write_text(json.dumps(data))
    config = _config(tmp_path, perfect, tiny_coco, dataset={"max_image_pixels": 100_000_000})
    with pytest.raises(DatasetError) as raised:
        check_inputs(config)
    assert str(raised.value).startswith(f"image {path} is corrupt or not an image: ")
