"""The known assets: the zoo's SSD-ResNet34 models and COCO val2017, with checksums and URLs.

Checksums from the onnx/models hub manifest and the COCO download page. To add a model, append a
`ModelSource` to `MODEL_SOURCES`; a data set, a `DatasetSource` to `DATASET_SOURCES`
(`ssd_eval.assets.fetch` downloads, verifies and caches them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from ssd_eval.errors import AssetError

DEFAULT_MODEL = "ssd-10"
DEFAULT_DATASET = "coco-val2017"


@dataclass(frozen=True)
class ModelSource:
    """One ONNX file, its checksum and where to get it (URLs tried in order)."""

    name: str
    filename: str
    sha256: str
    size: int
    urls: tuple[str, ...]
    published_ap: float
    description: str


@dataclass(frozen=True)
class ArchiveSource:
    """One zip and the members of it that are needed (a name ending in `/` is a folder)."""

    name: str
    filename: str
    md5: str
    size: int
    urls: tuple[str, ...]
    members: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSource:
    """A COCO-layout data set assembled from archives into `<cache>/<folder>`."""

    name: str
    folder: str
    archives: tuple[ArchiveSource, ...]
    annotations: str
    images: str
    image_count: int
    description: str


# The zoo's files, newest location first: the Hugging Face copy of the model zoo, onnx/models' Git
# LFS at the current `validated/` path, then the older `vision/` path at a commit whose
# ONNX_HUB_MANIFEST.json lists these files with the checksums below (onnx/models 7c5650d).
_ZOO_DIR = "vision/object_detection_segmentation/ssd/model"
_ZOO_HF = "https://huggingface.co/onnxmodelzoo/legacy_models/resolve/main/validated"
_ZOO_LFS = "https://media.githubusercontent.com/media/onnx/models/main/validated"
_ZOO_OLD = "https://github.com/onnx/models/raw/7c5650d291ca2205c295c871f364dcfb8799f35b"


def _zoo_urls(filename: str) -> tuple[str, ...]:
    return tuple(f"{base}/{_ZOO_DIR}/{filename}" for base in (_ZOO_HF, _ZOO_LFS, _ZOO_OLD))


MODEL_SOURCES: tuple[ModelSource, ...] = (
    ModelSource(
        name="ssd-10",
        filename="ssd-10.onnx",
        sha256="80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59",
        size=80_363_696,
        urls=_zoo_urls("ssd-10.onnx"),
        published_ap=0.195,
        description="ONNX zoo SSD-ResNet34 1200x1200, opset 10 (the model card's 0.195)",
    ),
    ModelSource(
        name="ssd-12",
        filename="ssd-12.onnx",
        sha256="5ec1e058e666ef980a6213ac40088877865aafb2b6676b9af204b3828e4bb9d5",
        size=80_366_315,
        urls=_zoo_urls("ssd-12.onnx"),
        published_ap=0.1898,
        description="the same model converted at opset 12",
    ),
    ModelSource(
        name="ssd-12-int8",
        filename="ssd-12-int8.onnx",
        sha256="56d2c03a8c74c03f704509ccfcd91763991c6e1b92f63da730fb2b3d07565453",
        size=20_485_276,
        urls=(
            *_zoo_urls("ssd-12-int8.onnx"),
            "https://huggingface.co/onnxmodelzoo/ssd-12-int8/resolve/main/ssd-12-int8.onnx",
        ),
        published_ap=0.1892,
        description="opset 12, INT8 quantized (QLinear operators)",
    ),
    ModelSource(
        name="ssd-12-qdq",
        filename="ssd-12-qdq.onnx",
        sha256="fba599b77e556525844e4e1022a9f60969b0e9130baa03640539cb0b58f474a2",
        size=20_479_614,
        urls=_zoo_urls("ssd-12-qdq.onnx"),
        published_ap=0.1863,
        description="opset 12, INT8 quantized (QuantizeLinear/DequantizeLinear pairs)",
    ),
)

COCO_VAL2017_IMAGES = ArchiveSource(
    name="val2017",
    filename="val2017.zip",
    md5="442b8da7639aecaf257c1dceb8ba8c80",
    size=815_585_330,
    urls=("http://images.cocodataset.org/zips/val2017.zip",),
    members=("val2017/",),
)
COCO_ANNOTATIONS_2017 = ArchiveSource(
    name="annotations_trainval2017",
    filename="annotations_trainval2017.zip",
    md5="f4bbac642086de4f52a3fdda2de5fa2c",
    size=252_907_541,
    urls=("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",),
    members=("annotations/instances_val2017.json",),
)

DATASET_SOURCES: tuple[DatasetSource, ...] = (
    DatasetSource(
        name="coco-val2017",
        folder="coco",
        archives=(COCO_VAL2017_IMAGES, COCO_ANNOTATIONS_2017),
        annotations="annotations/instances_val2017.json",
        images="val2017",
        image_count=5000,
        description="COCO 2017 validation: 5000 images, instance annotations",
    ),
)

_S = TypeVar("_S", ModelSource, DatasetSource)


def _by_name(sources: Iterable[_S]) -> Mapping[str, _S]:
    return MappingProxyType({source.name: source for source in sources})


MODELS: Mapping[str, ModelSource] = _by_name(MODEL_SOURCES)
DATASETS: Mapping[str, DatasetSource] = _by_name(DATASET_SOURCES)


def known_names() -> list[str]:
    """Every name `get_source` knows."""
    return [*MODELS, *DATASETS]


def get_source(name: str) -> ModelSource | DatasetSource:
    """The known model or data set called `name`."""
    source = MODELS.get(name) or DATASETS.get(name)
    if source is None:
        raise AssetError(f"unknown asset {name!r}: known are {', '.join(known_names())}")
    return source


def get_model_source(name: str) -> ModelSource:
    """The known model called `name`."""
    source = MODELS.get(name)
    if source is None:
        raise AssetError(f"unknown model {name!r}: known models are {', '.join(MODELS)}")
    return source


def get_dataset_source(name: str) -> DatasetSource:
    """The known data set called `name`."""
    source = DATASETS.get(name)
    if source is None:
        raise AssetError(f"unknown data set {name!r}: known data sets are {', '.join(DATASETS)}")
    return source
