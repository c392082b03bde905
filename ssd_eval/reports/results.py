"""The results object every report, gate and comparison reads, and its `metrics.json` form."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ssd_eval import __version__
from ssd_eval.config.run import DatasetConfig, DecodeConfig, PreprocessConfig
from ssd_eval.data.dataset import CocoGroundTruth
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.gate import GateReport, RunFacts

METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class SkippedImage:
    """An image left out of inference; its ground truth still counts, as missed."""

    image_id: int
    file: str
    reason: str


@dataclass(frozen=True)
class ModelInfo:
    """Which model file was evaluated, identified by content."""

    path: str
    sha256: str
    size_bytes: int
    source: str | None


@dataclass(frozen=True)
class StageTiming:
    """Seconds spent in one pipeline stage, over all images."""

    total_s: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    count: int

    @classmethod
    def from_samples(cls, seconds: Sequence[float]) -> StageTiming:
        if not seconds:
            return cls(0.0, 0.0, 0.0, 0.0, 0)
        values = np.asarray(seconds, dtype=np.float64)
        return cls(
            total_s=round(float(values.sum()), 4),
            mean_ms=round(float(values.mean() * 1e3), 3),
            median_ms=round(float(np.median(values) * 1e3), 3),
            p90_ms=round(float(np.percentile(values, 90) * 1e3), 3),
            count=len(values),
        )


@dataclass(frozen=True)
class Protocol:
    """Which images were evaluated, and how: recorded with every result."""

    selection: str  # annotated (4952 of val2017, the published protocol) | all (5000)
    num_images: int  # images scored
    total_images: int  # images in the annotation file
    annotated_images: int
    limit: int | None
    shard: str | None
    clip_boxes: bool
    score_threshold: float
    preprocess: str
    input_size: tuple[int, int]

    @classmethod
    def of(
        cls,
        gt: CocoGroundTruth,
        *,
        dataset: DatasetConfig,
        decode: DecodeConfig,
        preprocess: PreprocessConfig,
        shard: str | None,
        input_size: tuple[int, int],
    ) -> Protocol:
        """The protocol of an evaluation of `gt`'s images with these settings."""
        return cls(
            selection=gt.selection,
            num_images=len(gt.images),
            total_images=gt.total_images,
            annotated_images=gt.annotated_images,
            limit=dataset.limit,
            shard=shard,
            clip_boxes=decode.clip_boxes,
            score_threshold=decode.score_threshold,
            preprocess=preprocess.backend,
            input_size=input_size,
        )

    @property
    def complete(self) -> bool:
        """True when the full selection was evaluated (no limit, no shard)."""
        return self.limit is None and self.shard is None


@dataclass(frozen=True)
class RunResult:
    """One evaluation run: metrics and everything needed to trust and reproduce them."""

    run_dir: str
    stats: dict[str, float]
    per_category: tuple[CategoryScore, ...]
    protocol: Protocol
    model: ModelInfo
    providers_requested: tuple[str, ...]
    providers_used: tuple[str, ...]
    provider_options: tuple[dict[str, Any], ...]
    num_detections: int
    timings: dict[str, StageTiming]
    wall_s: float
    images_per_s: float
    skipped_images: tuple[SkippedImage, ...] = ()
    # What the run found suspicious but not wrong (e.g. more detections per image than the card's 200).
    warnings: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)  # GateReport.to_json(): verdict, reason, rules
    diagnosis: dict[str, Any] | None = None  # Diagnosis.to_json() when a full run missed its reference
    provenance: dict[str, Any] = field(default_factory=dict)  # Provenance.to_json(): when, what, which code

    @property
    def ap(self) -> float:
        return self.stats["AP"]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["per_category"] = [asdict(c) for c in self.per_category]
        return data


def result_from_json(data: Mapping[str, Any]) -> RunResult:
    """Read back a `metrics.json` written by `write_metrics`."""
    return RunResult(
        run_dir=data["run_dir"],
        stats=dict(data["stats"]),
        per_category=tuple(CategoryScore(**c) for c in data["per_category"]),
        protocol=Protocol(**{**data["protocol"], "input_size": tuple(data["protocol"]["input_size"])}),
        model=ModelInfo(**data["model"]),
        providers_requested=tuple(data["providers_requested"]),
        providers_used=tuple(data["providers_used"]),
        provider_options=tuple(data["provider_options"]),
        num_detections=int(data["num_detections"]),
        timings={k: StageTiming(**v) for k, v in data["timings"].items()},
        wall_s=float(data["wall_s"]),
        images_per_s=float(data["images_per_s"]),
        skipped_images=tuple(SkippedImage(**s) for s in data.get("skipped_images", [])),
        warnings=tuple(data.get("warnings", [])),
        config=dict(data.get("config", {})),
        versions=dict(data.get("versions", {})),
        machine=dict(data.get("machine", {})),
        gate=dict(data["gate"]) if isinstance(data.get("gate"), dict) else {},
        diagnosis=data.get("diagnosis"),
        provenance=dict(data.get("provenance", {})),
    )


def gate_facts(result: RunResult) -> RunFacts:
    """What the gate rules read of a run."""
    p = result.protocol
    partial = ", ".join(
        part
        for part in (f"shard {p.shard}" if p.shard else "", f"limit {p.limit}" if p.limit is not None else "")
        if part
    )
    return RunFacts(
        stats=result.stats,
        per_category=result.per_category,
        selection=p.selection,
        num_images=p.num_images,
        complete=p.complete,
        model_sha256=result.model.sha256,
        model_name=Path(result.model.path).name,
        partial=partial,
    )


@dataclass(frozen=True)
class Provenance:
    """Which command produced a metrics.json, when (UTC), and with which ssd_eval."""

    started: str  # ISO 8601 UTC
    finished: str
    command: tuple[str, ...]
    ssd_eval_version: str
    git_commit: str | None  # the checkout ssd_eval ran from, if it is one

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "command": list(self.command)}


def utc_now() -> str:
    """Now, in UTC, to the second: 2026-11-30T19:37:15Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def source_commit() -> str | None:
    """The git commit of the checkout ssd_eval is imported from, or None (an installed package)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def provenance(started: str, command: Sequence[str]) -> Provenance:
    """The provenance of a command that started at `started` and finishes now."""
    return Provenance(
        started=started,
        finished=utc_now(),
        command=tuple(command),
        ssd_eval_version=__version__,
        git_commit=source_commit(),
    )


def record_verdict(result: RunResult, report: GateReport, prov: Provenance) -> RunResult:
    """Add the gate's verdict and the provenance to the run's metrics.json."""
    updated = replace(result, gate=report.to_json(), provenance=prov.to_json())
    write_metrics(Path(result.run_dir) / METRICS_FILE, updated)
    return updated


def write_metrics(path: Path, result: RunResult) -> None:
    """Write `metrics.json` atomically (a crash never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_model(path: Path, source: str | None) -> ModelInfo:
    return ModelInfo(path=str(path), sha256=file_sha256(path), size_bytes=path.stat().st_size, source=source)


def package_versions() -> dict[str, str]:
    """Versions of everything that can change a result."""
    versions = {"python": platform.python_version()}
    for dist in (
        "ssd_eval",
        "onnxruntime",
        "onnxruntime-gpu",
        "onnxruntime-openvino",
        "onnxruntime-directml",
        "numpy",
        "pillow",
        "pycocotools",
        "faster-coco-eval",
        "opencv-python-headless",
        "opencv-python",
        "onnx",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python_executable": sys.executable,
    }
