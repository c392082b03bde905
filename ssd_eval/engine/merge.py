"""Merge the run folders of `--shard K/N` runs into one run whose metrics equal an unsharded run's.

Shards partition the image ids deterministically (`dataset.select_images`), so the union of their
detection logs, put back in image-id order, is exactly what one unsharded run would have logged;
the merged folder is then scored like any run. Runs that do not belong together are refused by their
identities (`evaluation.identity`): another model, provider under test, ground truth, image
selection, preprocessing, decoding or gate rules; a shard count that differs, a shard missing or
given twice, parts that overlap or do not add up to the whole.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ssd_eval.config.run import RunConfig
from ssd_eval.data.dataset import CocoGroundTruth, reselect
from ssd_eval.engine.finish import finish_run
from ssd_eval.engine.rescore import (
    check_complete,
    check_ground_truth,
    require_run_info,
    run_times,
    scoring_ground_truth,
    with_overrides,
)
from ssd_eval.engine.run_folder import (
    BUSY_OTHER,
    MERGE_ADVICE,
    RunInfo,
    append_history,
    append_skipped,
    check_apart,
    derived_identity,
    load_run_config,
    locked_run_folder,
    parse_shard,
    prepare_run_folder,
    read_history,
    read_identity,
    read_skipped,
    write_identity,
    write_run_info,
)
from ssd_eval.errors import OutputError
from ssd_eval.evaluation.detection_log import DetectionLog, read_detection_log
from ssd_eval.evaluation.identity import Aspect, RunIdentity, describe_differences, ids_digest
from ssd_eval.evaluation.scoring import ScoringBackend
from ssd_eval.files import DETECTION_LOG, SKIPPED_LOG
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.results import Provenance, RunResult, RunTimes, SkippedImage, provenance, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardRun:
    """One shard's run folder as read back."""

    folder: Path
    config: RunConfig
    info: RunInfo
    identity: RunIdentity


# Shards of one run are the same run in every way but the part of the images each evaluated.
MERGE_ASPECTS: tuple[Aspect, ...] = (
    "model",
    "provider",
    "ground truth",
    "images",
    "preprocess",
    "decode",
    "rules",
)


def check_compatible(runs: Sequence[ShardRun]) -> int:
    """The shard count, after refusing runs that do not form one whole: not shards, another run
    identity (model, provider, ground truth, image selection, settings, gate rules), a shard given
    twice or missing, or parts that overlap or do not add up to the whole selection."""
    for run in runs:
        if not run.identity.images.is_shard:
            raise OutputError(f"cannot merge: {run.folder} is not a shard (it was run without --shard K/N)")
    first = runs[0]
    for run in runs[1:]:
        differences = run.identity.differences(first.identity, MERGE_ASPECTS)
        if differences:
            raise OutputError(
                f"cannot merge: {describe_differences(differences, str(run.folder), str(first.folder))}; "
                "merge only the shards of one run"
            )
    shards = [(parse_shard(str(run.identity.images.shard)), run.folder) for run in runs]
    counts = {shard.count for shard, _ in shards}
    if len(counts) != 1:
        raise OutputError(f"cannot merge: shard counts differ ({', '.join(str(s) for s, _ in shards)})")
    (count,) = counts
    seen: dict[int, Path] = {}
    for shard, folder in shards:
        if shard.index in seen:
            raise OutputError(
                f"cannot merge: shard {shard} is given twice ({seen[shard.index]} and {folder})"
            )
        seen[shard.index] = folder
    missing = [str(i + 1) for i in range(count) if i not in seen]
    if missing:
        raise OutputError(
            f"cannot merge: shard(s) {', '.join(missing)} of {count} are missing; "
            "give every shard's run folder"
        )
    owner: dict[int, Path] = {}
    for run in runs:
        for image_id in run.identity.images.image_ids:
            if image_id in owner:
                raise OutputError(
                    f"cannot merge: image {image_id} is in both {owner[image_id]} and {run.folder}; "
                    "merge only the shards of one run"
                )
            owner[image_id] = run.folder
    whole = first.identity.images
    if owner and (len(owner) != whole.whole_count or ids_digest(owner) != whole.whole_digest):
        raise OutputError(
            f"cannot merge: the shards' {len(owner)} images are not the {whole.whole_count} images of the "
            "selection they were cut from; merge only the shards of one run"
        )
    return count


def _parts(run: ShardRun) -> list[Provenance]:
    """A shard's inference parts for the merged history (an older shard: one part from metrics.json)."""
    history = [replace(entry, folder=entry.folder or run.folder.name) for entry in read_history(run.folder)]
    parts = [entry for entry in history if entry.inferred]
    if parts:
        return parts
    times = run_times(run.folder, history)
    inferred = times.timings["infer"].count if "infer" in times.timings else 0
    return [
        Provenance(
            started="",
            finished="",
            command=(),
            ssd_eval_version="",
            git_commit=None,
            verb="run",
            images_inferred=inferred,
            wall_s=times.wall_s,
            timings=times.timings,
            folder=run.folder.name,
        )
    ]


def default_output(folders: Sequence[Path]) -> Path:
    """`<first shard's parent>/<its name without -shardKofN>-merged`."""
    name = re.sub(r"-shard\d+of\d+", "", folders[0].name)
    return folders[0].parent / f"{name}-merged"


@dataclass(frozen=True)
class MergePlan:
    """Shards read back and checked to form one whole, and where their merge goes: all a merge needs
    before it writes anything (`write_merge`)."""

    runs: tuple[ShardRun, ...]  # in shard order
    count: int
    target: Path
    config: RunConfig  # the first shard's, writing `target`
    gt: CocoGroundTruth
    identity: RunIdentity
    detections: dict[int, Detections]
    skipped: dict[int, SkippedImage]
    started: str


def plan_merge(
    folders: Sequence[Path],
    output: Path | None = None,
    *,
    backend: ScoringBackend | None = None,
    data: Path | None = None,
    overwrite: bool = False,
) -> MergePlan:
    """Read and check the shards of one run; the merged folder is `output` (default `<first>-merged`),
    which may not be one of them, nor inside or around one.

    The shards are taken in shard order whatever the order given, so the merged folder (its config,
    its rules, its verdict) does not depend on the order of the arguments.
    """
    started = utc_now()
    if not folders:
        raise OutputError("cannot merge: give the run folders of the shards")
    runs = _read_shards(folders, backend=backend, data=data)
    count = check_compatible(runs)
    runs.sort(key=lambda run: parse_shard(str(run.identity.images.shard)).index)
    target = output if output is not None else default_output([r.folder for r in runs])
    check_apart(target, [run.folder for run in runs], what="the merged folder (--output)")
    first = runs[0]
    image_ids = sorted(i for run in runs for i in run.identity.images.image_ids)
    merged_identity = first.identity.whole(image_ids)
    gt = scoring_ground_truth(first.config, None, merged_identity)
    check_ground_truth(first.folder, merged_identity, gt)
    detections: dict[int, Detections] = {}
    skipped: dict[int, SkippedImage] = {}
    for run in runs:
        own = set(run.identity.images.image_ids)
        shard_dets = {i: d for i, d in read_detection_log(run.folder / DETECTION_LOG).items() if i in own}
        shard_skipped = {i: s for i, s in read_skipped(run.folder / SKIPPED_LOG).items() if i in own}
        shard_gt = reselect(
            gt,
            selection=gt.selection,
            limit=gt.limit,
            shard=parse_shard(str(run.identity.images.shard)),
            id_list=gt.id_list,
        )
        check_complete(run.folder, shard_gt, shard_dets, shard_skipped)
        detections.update(shard_dets)
        skipped.update(shard_skipped)
    merged_config = dataclasses.replace(
        first.config,
        output=dataclasses.replace(
            first.config.output, dir=target.parent, run_name=target.name, overwrite=overwrite
        ),
    )
    return MergePlan(
        tuple(runs), count, target, merged_config, gt, merged_identity, detections, skipped, started
    )


def write_merge(plan: MergePlan, command: Sequence[str] = ()) -> RunResult:
    """Write the merged run folder and score the whole; the caller holds `plan.target`'s lock."""
    target, runs, gt = plan.target, plan.runs, plan.gt
    first = runs[0]
    prepare_run_folder(target, plan.config, resume=False, advice=MERGE_ADVICE)
    with DetectionLog(target / DETECTION_LOG) as det_log:
        for image_id in gt.image_ids:
            if image_id in plan.detections:
                det_log.append(plan.detections[image_id])
    for image_id in sorted(plan.skipped):
        append_skipped(target / SKIPPED_LOG, plan.skipped[image_id])
    providers = {p for r in runs for p in r.info.providers_used}
    info = dataclasses.replace(first.info, shard=None)
    if len(providers) != len(first.info.providers_used):
        log.warning("the shards used different fallback providers: %s", ", ".join(sorted(providers)))
    write_run_info(target, info)
    write_identity(target, plan.identity)
    for run in runs:
        for part in _parts(run):
            append_history(target, part)
    shard_names = ", ".join(r.folder.name for r in runs)
    append_history(
        target,
        provenance(
            plan.started, command or ("python", "-c", "ssd_eval.merge(...)"), verb="merge", folder=shard_names
        ),
    )
    times = RunTimes.of(read_history(target))
    log.info("merged %d shards of %d into %s", len(runs), plan.count, target)
    return finish_run(
        target,
        plan.config,
        gt,
        plan.detections,
        plan.skipped,
        info,
        identity=plan.identity,
        timings=times.timings,
        wall_s=times.wall_s,
        images_per_s=times.images_per_s,
    )


def merge_runs(
    folders: Sequence[Path],
    output: Path | None = None,
    *,
    backend: ScoringBackend | None = None,
    data: Path | None = None,
    overwrite: bool = False,
    command: Sequence[str] = (),
) -> RunResult:
    """Merge shard run folders into `output` and score the whole (`plan_merge`, then `write_merge`
    while holding the output's lock: a folder another process writes is never replaced)."""
    plan = plan_merge(folders, output, backend=backend, data=data, overwrite=overwrite)
    with locked_run_folder(plan.target, busy=BUSY_OTHER):
        return write_merge(plan, command)


def _read_shards(
    folders: Sequence[Path], *, backend: ScoringBackend | None, data: Path | None
) -> list[ShardRun]:
    """Each shard folder with its identity (an older folder's derived from what it recorded)."""
    runs = []
    read: dict[tuple[str, str], CocoGroundTruth] = {}  # annotation files, each read once
    for folder in folders:
        recorded = load_run_config(folder)
        config = with_overrides(recorded, backend=backend, data=data)
        info = require_run_info(folder)
        identity = read_identity(folder)
        if identity is None:  # an older shard: its identity from its own annotation file
            key = (str(config.dataset.root), config.dataset.annotations)
            if key not in read:
                read[key] = scoring_ground_truth(config, None)
            identity = derived_identity(folder, recorded, info, read[key])
        runs.append(ShardRun(folder, config, info, identity))
    return runs
