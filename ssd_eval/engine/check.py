"""Every input check a run makes, without the run: for the first step of a CI job (`ssd-eval check`).

The checks themselves live in the lower stages and are the very ones a run meets: the config's
(when it was loaded), the annotation file's (`data.annotation_checks`, when it is read), every
evaluated image's header (`data.dataset.probe_image`: present, readable, its size the annotation
file's and within `dataset.max_image_pixels`), the model's signature and output contract
(`pipeline.session` and `pipeline.output_contract`), and one real inference on the first image,
decoded (symbolic output shapes and the values are checked there). The first problem is raised as
the `SsdEvalError` a run would raise; nothing is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ssd_eval.config.run import RunConfig
from ssd_eval.data.dataset import CocoGroundTruth, Shard, load_checked, open_ground_truth, probe_image
from ssd_eval.engine.resolve import resolve_assets, resolve_data
from ssd_eval.engine.runner import model_input_size
from ssd_eval.errors import DatasetError
from ssd_eval.pipeline.decode import decode_image
from ssd_eval.pipeline.graph_preprocess import GraphPreprocessor
from ssd_eval.pipeline.preprocess import HostPreprocessor, Normalization
from ssd_eval.pipeline.session import ProviderSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataCheck:
    """What the data check saw."""

    annotation_file: Path
    image_dir: Path
    selection: str
    images: int  # evaluated images, each header probed
    total_images: int  # images in the annotation file
    annotations: int
    categories: int


@dataclass(frozen=True)
class ModelCheck:
    """What the model check saw: the session, and the first image through the whole pipeline."""

    model: Path
    input_size: tuple[int, int]
    providers_used: tuple[str, ...]
    first_image: str
    detections: int


@dataclass(frozen=True)
class CheckReport:
    """Everything was fine; `model` is None when no model was asked to be checked."""

    data: DataCheck
    model: ModelCheck | None


def check_inputs(config: RunConfig, *, check_model: bool = True, shard: Shard | None = None) -> CheckReport:
    """Run the data (and model) checks of `config`; the first problem raises as in a run."""
    if check_model:
        assets = resolve_assets(config)
        annotation_file, image_dir = assets.annotation_file, assets.image_dir
    else:
        annotation_file, image_dir = resolve_data(config)
    gt = open_ground_truth(
        annotation_file,
        image_dir,
        selection=config.dataset.selection,
        limit=config.dataset.limit,
        shard=shard,
        id_list=config.dataset.image_ids,
    )
    _probe_images(gt, config.dataset.max_image_pixels)
    data = DataCheck(
        annotation_file=annotation_file,
        image_dir=image_dir,
        selection=gt.selection,
        images=len(gt.images),
        total_images=gt.total_images,
        annotations=len(gt.coco_json["annotations"]),
        categories=len(gt.coco_json["categories"]),
    )
    return CheckReport(data, _check_model(config, assets.model, gt) if check_model else None)


def _probe_images(gt: CocoGroundTruth, max_pixels: int) -> None:
    """Every evaluated image's header; one error naming the first problem and counting them all."""
    problems: list[DatasetError] = []
    for record in gt.images:
        try:
            probe_image(gt, record, max_pixels=max_pixels)
        except DatasetError as exc:
            problems.append(exc)
    if problems:
        more = (
            f" ({len(problems) - 1} more of the {len(gt.images)} images have problems)"
            if len(problems) > 1
            else ""
        )
        raise DatasetError(f"{problems[0]}{more}")


def _check_model(config: RunConfig, model: Path, gt: CocoGroundTruth) -> ModelCheck:
    """Open the session (signature, providers, output contract) and run the first image end to end."""
    with ProviderSession(
        model, config.providers, config.session, input_name=config.model.input, outputs=config.model.outputs
    ) as session:
        signature = session.signature
        assert signature is not None  # set by activate()
        input_size = model_input_size(config, signature.input_height, signature.input_width, model)
        record = gt.images[0]
        norm = Normalization.from_mean_std(config.preprocess.mean, config.preprocess.std)
        host = HostPreprocessor(config.preprocess.backend, input_size, norm)
        tensor = host(load_checked(gt, record, max_pixels=config.dataset.max_image_pixels).pixels)
        if host.in_graph:
            graph = GraphPreprocessor.for_session(
                input_size,
                norm,
                resize=config.preprocess.backend == "onnx-resize",
                providers=session.providers_used,
                session=config.session,
                provider_configs=config.providers,
            )
            tensor, _ = graph(tensor)
        raw, _ = session.infer(tensor)
        detections = decode_image(raw, record, gt.label_map, config.decode)
        log.debug("first image %s: %d detections", record.file_name, len(detections))
        return ModelCheck(
            model=model,
            input_size=input_size,
            providers_used=session.providers_used,
            first_image=record.file_name,
            detections=len(detections),
        )
