"""Merge the run folders of `--shard K/N` runs into one run whose metrics equal an unsharded run's.

Shards partition the image ids deterministically (`dataset.select_images`), so the union of their
detection logs, put back in image-id order, is exactly what one unsharded run would have logged;
the merged folder is then scored like any run. Runs that do not belong together are refused: a
different model (sha256), protocol (selection, limit, decode, preprocessing, input size),
provider under test, shard count, or a shard missing or given twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssd_eval.config.run import RunConfig
from ssd_eval.config.schema import config_to_dict
from ssd_eval.engine.rescore import (
    check_complete,
    previous_timings,
    require_run_info,
    scoring_ground_truth,
    with_overrides,
)
from ssd_eval.engine.run_folder import (
    DETECTION_LOG,
    SKIPPED_LOG,
    RunInfo,
    append_skipped,
    load_run_config,
    parse_shard,
    prepare_run_folder,
    read_skipped,
    write_run_info,
)
from ssd_eval.engine.runner import finish_run
from ssd_eval.errors import OutputError
from ssd_eval.evaluation.detection_log import DetectionLog, read_detection_log
from ssd_eval.evaluation.scoring import ScoringBackend
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.results import RunResult, SkippedImage, StageTiming

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardRun:
    """One shard's run folder as read back."""

    folder: Path
    config: RunConfig
    info: RunInfo


def _protocol_key(run: ShardRun) -> dict[str, Any]:
    """Everything that must be equal for shards to form one run."""
    c = run.config
    return {
        "dataset.selection": c.dataset.selection,
        "dataset.limit": c.dataset.limit,
        "dataset.annotations": c.dataset.annotations,
        "decode": config_to_dict(c.decode),
        "preprocess.backend": c.preprocess.backend,
        "preprocess.mean/std": (c.preprocess.mean, c.preprocess.std),
        "input_size": run.info.input_size,
    }


def check_compatible(runs: Sequence[ShardRun]) -> int:
    """The shard count, after refusing runs that do not belong together."""
    first = runs[0]
    checks: list[tuple[str, Callable[[ShardRun], Any]]] = [
        ("model sha256", lambda r: r.info.model.sha256),
        ("provider under test", lambda r: r.info.providers_used[:1]),
    ]
    for name, get in checks:
        for run in runs[1:]:
            if get(run) != get(first):
                raise OutputError(
                    f"cannot merge: {run.folder} has {name} {get(run)} but {first.folder} has {get(first)}; "
                    "merge only the shards of one run"
                )
    reference = _protocol_key(first)
    for run in runs[1:]:
        for key, value in _protocol_key(run).items():
            if value != reference[key]:
                raise OutputError(
                    f"cannot merge: protocol differs: {key} is {value!r} in {run.folder} but "
                    f"{reference[key]!r} in {first.folder}; merge only the shards of one run"
                )
    shards = []
    for run in runs:
        if run.info.shard is None:
            raise OutputError(f"cannot merge: {run.folder} is not a shard (it was run without --shard K/N)")
        shards.append((parse_shard(run.info.shard), run.folder))
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
    return count


def _combine_timings(parts: Sequence[dict[str, StageTiming]]) -> dict[str, StageTiming]:
    """Totals and counts add up; median and p90 are count-weighted means of the shards' (approximate)."""
    combined: dict[str, StageTiming] = {}
    for stage in sorted({k for p in parts for k in p}):
        items = [p[stage] for p in parts if stage in p and p[stage].count]
        count = sum(t.count for t in items)
        if not count:
            continue
        total = sum(t.total_s for t in items)
        combined[stage] = StageTiming(
            total_s=round(total, 4),
            mean_ms=round(total / count * 1e3, 3),
            median_ms=round(sum(t.median_ms * t.count for t in items) / count, 3),
            p90_ms=round(sum(t.p90_ms * t.count for t in items) / count, 3),
            count=count,
        )
    return combined


def default_output(folders: Sequence[Path]) -> Path:
    """`<first shard's parent>/<its name without -shardKofN>-merged`."""
    import re

    name = re.sub(r"-shard\d+of\d+", "", folders[0].name)
    return folders[0].parent / f"{name}-merged"


def merge_runs(
    folders: Sequence[Path],
    output: Path | None = None,
    *,
    backend: ScoringBackend | None = None,
    data: Path | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Merge shard run folders into `output` and score the whole."""
    if not folders:
        raise OutputError("cannot merge: give the run folders of the shards")
    runs = []
    for folder in folders:
        config = with_overrides(load_run_config(folder), backend=backend, data=data)
        runs.append(ShardRun(folder, config, require_run_info(folder)))
    count = check_compatible(runs)
    first = runs[0]
    gt = scoring_ground_truth(first.config, None)
    detections: dict[int, Detections] = {}
    skipped: dict[int, SkippedImage] = {}
    for run in runs:
        shard_gt = scoring_ground_truth(run.config, parse_shard(str(run.info.shard)))
        own = set(shard_gt.image_ids)
        shard_dets = {i: d for i, d in read_detection_log(run.folder / DETECTION_LOG).items() if i in own}
        shard_skipped = {i: s for i, s in read_skipped(run.folder / SKIPPED_LOG).items() if i in own}
        check_complete(run.folder, shard_gt, shard_dets, shard_skipped)
        detections.update(shard_dets)
        skipped.update(shard_skipped)
    target = output if output is not None else default_output(folders)
    merged_config = dataclasses.replace(
        first.config,
        output=dataclasses.replace(
            first.config.output, dir=target.parent, run_name=target.name, overwrite=overwrite
        ),
    )
    prepare_run_folder(target, merged_config, resume=False)
    with DetectionLog(target / DETECTION_LOG) as det_log:
        for image_id in gt.image_ids:
            if image_id in detections:
                det_log.append(detections[image_id])
    for image_id in sorted(skipped):
        append_skipped(target / SKIPPED_LOG, skipped[image_id])
    providers = {p for r in runs for p in r.info.providers_used}
    info = dataclasses.replace(first.info, shard=None)
    if len(providers) != len(first.info.providers_used):
        log.warning("the shards used different fallback providers: %s", ", ".join(sorted(providers)))
    write_run_info(target, info)
    parts = [previous_timings(r.folder) for r in runs]
    wall_s = sum(p[1] for p in parts)
    inferred = sum(p[0]["infer"].count for p in parts if "infer" in p[0])
    log.info("merged %d shards of %d into %s", len(runs), count, target)
    return finish_run(
        target,
        merged_config,
        gt,
        detections,
        skipped,
        info,
        timings=_combine_timings([p[0] for p in parts]),
        wall_s=wall_s,
        images_per_s=inferred / wall_s if wall_s > 0 else 0.0,
    )
