"""Re-score a run folder from its detection log, without a model or an inference session.

`ssd-eval score RUN_DIR` reads `detections.jsonl`, `skipped.jsonl` and `run_info.json`, scores
with the run's scorer (or another one) and rewrites `metrics.json`; the stats equal the run's own
exactly, because the log holds bit-identical floats in the same order.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ssd_eval.config.run import RunConfig
from ssd_eval.config.schema import absolute
from ssd_eval.config.strict_load import loads_json
from ssd_eval.data.dataset import CocoGroundTruth, IdList, Shard, open_ground_truth, reselect
from ssd_eval.engine.finish import finish_run
from ssd_eval.engine.resolve import resolve_data
from ssd_eval.engine.run_folder import (
    RunInfo,
    append_history,
    derived_identity,
    load_run_config,
    parse_shard,
    read_history,
    read_identity,
    read_run_info,
    read_skipped,
)
from ssd_eval.errors import OutputError
from ssd_eval.evaluation.detection_log import read_detection_log
from ssd_eval.evaluation.identity import RunIdentity, describe_differences, with_ground_truth
from ssd_eval.evaluation.scoring import ScoringBackend
from ssd_eval.files import DETECTION_LOG, SKIPPED_LOG
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.results import (
    METRICS_FILE,
    Provenance,
    RunResult,
    RunTimes,
    SkippedImage,
    StageTiming,
    provenance,
    utc_now,
)

log = logging.getLogger(__name__)


def with_overrides(config: RunConfig, *, backend: ScoringBackend | None, data: Path | None) -> RunConfig:
    """The run's config with another scorer and/or another COCO root (paths differ across machines)."""
    replace = dataclasses.replace
    if backend is not None:
        config = replace(config, scoring=replace(config.scoring, backend=backend))
    if data is not None:
        config = replace(config, dataset=replace(config.dataset, root=absolute(data), source=None))
    return config


def require_run_info(folder: Path) -> RunInfo:
    info = read_run_info(folder)
    if info is None:
        raise OutputError(
            f"{folder} has no run_info.json: the run never reached its first image (or an older "
            "ssd_eval wrote it); rerun it"
        )
    return info


def scoring_ground_truth(
    config: RunConfig, shard: Shard | None, identity: RunIdentity | None = None
) -> CocoGroundTruth:
    """The run's evaluated images from its annotation file; the images themselves are not needed.

    A run of an id list chooses its images by the ids its identity recorded (the list file may not
    be on this machine); a shard of one needs the file.
    """
    annotation_file, image_dir = resolve_data(config, images=False)
    # Scoring reads no pixels: a machine that only has the annotation file can score and merge.
    folder = image_dir if image_dir.is_dir() else annotation_file.parent
    images = identity.images if identity is not None else None
    id_list = config.dataset.image_ids
    if images is not None and images.id_list_sha256 and images.image_ids and not images.is_shard:
        gt = open_ground_truth(annotation_file, folder, selection=config.dataset.selection)
        listed = IdList(id_list or Path("identity.json"), frozenset(images.image_ids), images.id_list_sha256)
        return reselect(
            gt, selection=config.dataset.selection, limit=config.dataset.limit, shard=None, id_list=listed
        )
    return open_ground_truth(
        annotation_file,
        folder,
        selection=config.dataset.selection,
        limit=config.dataset.limit,
        shard=shard,
        id_list=id_list,
    )


def check_complete(
    folder: Path, gt: CocoGroundTruth, detections: dict[int, Detections], skipped: dict[int, SkippedImage]
) -> None:
    """Every evaluated image has its detections (or was skipped), and the log holds no other image."""
    missing = [i for i in gt.image_ids if i not in detections and i not in skipped]
    if missing:
        raise OutputError(
            f"{folder}: {len(missing)} of {len(gt.images)} images have no detections yet (first: image "
            f"{missing[0]}): finish the run with `ssd-eval run --resume {folder}`"
        )
    wanted = set(gt.image_ids)
    extra = sorted(i for i in set(detections) | set(skipped) if i not in wanted)
    if extra:
        raise OutputError(
            f"{folder}: its log holds {len(extra)} image(s) that {gt.annotation_file} does not evaluate "
            f"(first: image {extra[0]}): score the run against the annotation file it was made with "
            "(--data the COCO root it used)"
        )


def check_ground_truth(folder: Path, identity: RunIdentity, gt: CocoGroundTruth) -> None:
    """Refuse to score a run against another ground truth or other images than it was made for
    (another copy of the same annotations is fine)."""
    differences = identity.differences(with_ground_truth(identity, gt), ("ground truth", "images", "shard"))
    if differences:
        raise OutputError(
            f"{folder}: {describe_differences(differences, 'the run', str(gt.annotation_file))}: score it "
            "against the annotations it was made with (--data the COCO root it used, or an identical copy)"
        )


def previous_timings(folder: Path) -> tuple[dict[str, StageTiming], float, float]:
    """Timings, wall time and throughput of the run's last metrics.json (empty if none): what an older
    folder, without a history, recorded of its inference."""
    path = folder / METRICS_FILE
    if not path.is_file():
        return {}, 0.0, 0.0
    try:
        data = loads_json(path.read_bytes().decode("utf-8"))
        timings = {k: StageTiming(**v) for k, v in data["timings"].items() if k != "score"}
        return timings, float(data["wall_s"]), float(data["images_per_s"])
    except (
        OSError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        RecursionError,
    ):  # a UnicodeDecodeError too
        log.warning("%s is damaged; its timings are not carried over", path)
        return {}, 0.0, 0.0


def run_times(folder: Path, history: Sequence[Provenance]) -> RunTimes:
    """What the run's inference cost: its parts in the history, or an older folder's metrics.json."""
    if any(entry.inferred for entry in history):
        return RunTimes.of(history)
    timings, wall_s, images_per_s = previous_timings(folder)
    return RunTimes(timings, wall_s, images_per_s)


@dataclass(frozen=True)
class ReadRun:
    """A finished run folder read back for scoring: what it is, and what it logged."""

    folder: Path
    config: RunConfig  # as recorded, with --scorer / --data on top
    info: RunInfo
    identity: RunIdentity
    gt: CocoGroundTruth
    detections: dict[int, Detections]
    skipped: dict[int, SkippedImage]


def read_run(folder: Path, *, backend: ScoringBackend | None = None, data: Path | None = None) -> ReadRun:
    """A run folder with its identity checked against the ground truth it is scored with now."""
    recorded = load_run_config(folder)
    config = with_overrides(recorded, backend=backend, data=data)
    info = require_run_info(folder)
    identity = read_identity(folder)
    shard = parse_shard(info.shard) if info.shard else None
    gt = scoring_ground_truth(config, shard, identity)
    if identity is None:
        identity = derived_identity(folder, recorded, info, gt)
    check_ground_truth(folder, identity, gt)
    detections = read_detection_log(folder / DETECTION_LOG)
    skipped = read_skipped(folder / SKIPPED_LOG)
    check_complete(folder, gt, detections, skipped)
    return ReadRun(folder, config, info, identity, gt, detections, skipped)


def rescore_run(
    folder: Path,
    *,
    backend: ScoringBackend | None = None,
    data: Path | None = None,
    command: Sequence[str] = (),
) -> RunResult:
    """Score a finished run folder again and rewrite its metrics.json; its history gains an entry."""
    started = utc_now()
    run = read_run(folder, backend=backend, data=data)
    append_history(
        folder, provenance(started, command or ("python", "-c", "ssd_eval.score(...)"), verb="score")
    )
    history = read_history(folder)
    times = run_times(folder, history)
    return finish_run(
        folder,
        run.config,
        run.gt,
        run.detections,
        run.skipped,
        run.info,
        identity=run.identity,
        timings=times.timings,
        wall_s=times.wall_s,
        images_per_s=times.images_per_s,
    )
