"""The results object every report, gate and comparison reads, and its `metrics.json` form."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

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
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    gate: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None  # Diagnosis.to_json() when a full run missed its reference

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
        config=dict(data.get("config", {})),
        versions=dict(data.get("versions", {})),
        machine=dict(data.get("machine", {})),
        gate=list(data.get("gate", [])),
        diagnosis=data.get("diagnosis"),
    )


def gate_facts(result: RunResult) -> RunFacts:
    """What the gate rules read of a run."""
    return RunFacts(
        stats=result.stats,
        per_category=result.per_category,
        selection=result.protocol.selection,
        num_images=result.protocol.num_images,
        complete=result.protocol.complete,
        model_sha256=result.model.sha256,
    )


def record_gate(result: RunResult, report: GateReport) -> RunResult:
    """Add the gate's verdicts to the run's metrics.json."""
    updated = replace(result, gate=[asdict(check) for check in report])
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
