"""The run configuration: a tree of frozen dataclasses, loaded strictly from YAML.

Every unknown key, wrong type or impossible value is a `ConfigError` naming the config file and
the dotted key path (`providers[1].name`), raised before any model or image is loaded. Relative
paths resolve against the folder of the config file; a bare config name also finds the configs
bundled with the package.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ssd_eval.coco_stats import STAT_NAMES
from ssd_eval.config.schema import absolute, parse_section, raise_first_problem, read_yaml_config

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The allowed |measured - expected| when a config or `--expect-ap` gives none: measured runs of the
# published protocol land at 0.1958 +- 0.001 against the card's 0.195 (see docs/protocol.md).
DEFAULT_TOLERANCE = 0.003
# Pillow's Image.MAX_IMAGE_PIXELS (its decompression-bomb warning limit); Pillow refuses outright any
# image of more than twice as many pixels, so dataset.max_image_pixels cannot go beyond that.
PILLOW_MAX_IMAGE_PIXELS = 89_478_485
# Bounds on the settings that size threads and tensors. A thread count beyond what any machine has
# cores for only costs: 2000 onnxruntime threads took 77 s on one small image, 20,000 drove a load
# average of 880. An input side beyond MAX_INPUT_SIZE is no SSD (the model card's is 1200) and its
# float tensor alone would be gigabytes.
MAX_THREADS = 256
MAX_WORKERS = 64
MAX_INPUT_SIZE = 4096


@dataclass(frozen=True)
class OutputNames:
    """Names of the model's three outputs."""

    boxes: str = "bboxes"
    labels: str = "labels"
    scores: str = "scores"


@dataclass(frozen=True)
class ModelConfig:
    """Which ONNX file to evaluate: an explicit `path`, or a known `source` fetched into the cache."""

    path: Path | None = None
    source: str | None = "ssd-10"
    input: str = "image"
    outputs: OutputNames = field(default_factory=OutputNames)


@dataclass(frozen=True)
class DatasetConfig:
    """Where COCO lives and which of its images are evaluated."""

    root: Path | None = None
    source: str | None = "coco-val2017"
    annotations: str = "annotations/instances_val2017.json"
    images: str = "val2017"
    # `annotated`: the 4952 images with annotations (the protocol of the published 0.195);
    # `all`: all 5000 (detectron2 / mmdet practice).
    selection: Literal["annotated", "all"] = "annotated"
    # A file of image ids (one per line, or a JSON list): only those images of the selection are
    # evaluated (a fixed CI subset); null: all of them. Relative to the config file.
    image_ids: Path | None = None
    limit: int | None = None
    on_bad_image: Literal["stop", "skip"] = "stop"
    # Larger images are bad images (stop or skip as above), refused from their header before decoding.
    max_image_pixels: int = PILLOW_MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes the model's input tensor."""

    # pillow: the model card's code (the reference); opencv: cv2 INTER_LINEAR on uint8 (needs
    # opencv); onnx-normalize: Pillow resize on uint8, /255 and mean/std in a small ONNX graph run
    # on the same provider; onnx-resize: the resize too in that graph (opset 18 antialiased linear).
    backend: Literal["pillow", "opencv", "onnx-normalize", "onnx-resize"] = "pillow"
    size: int | None = None  # None: the model's own input size
    # Threads decoding and preprocessing ahead of inference; null: automatic (min(4, CPUs));
    # 0: none (everything in the main thread, one image at a time).
    workers: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class ProviderConfig:
    """One onnxruntime execution provider and its provider options."""

    name: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionConfig:
    """onnxruntime session options."""

    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"
    intra_op_threads: int = 0  # 0: onnxruntime's default (one per physical core)
    inter_op_threads: int = 0
    # A provider that fails to load makes onnxruntime fall back to CPU silently; that is an error
    # here unless this is true.
    allow_cpu_fallback: bool = False


@dataclass(frozen=True)
class DecodeConfig:
    """How raw model outputs become COCO detections."""

    score_threshold: float = 0.0  # keep everything the graph emits (it already cuts at 0.05)
    clip_boxes: bool = False  # the published protocol does not clip; clipping raises IoU


@dataclass(frozen=True)
class ScoringConfig:
    """Which COCOeval implementation scores the detections."""

    # pycocotools: the reference; numpy: pycocotools' computation on arrays, bit-identical results,
    # seconds instead of minutes at val2017 scale; faster-coco-eval: same 12 stats to 1e-12
    # (pip install 'ssd_eval[fast]').
    backend: Literal["pycocotools", "faster-coco-eval", "numpy"] = "pycocotools"


@dataclass(frozen=True)
class OutputConfig:
    """Where a run's files go: `<dir>/<run_name>/`."""

    dir: Path | None = None  # None: ./results in the current folder
    run_name: str | None = None  # None: <config name>-<provider>-<timestamp>
    overwrite: bool = False


@dataclass(frozen=True)
class ExpectedConfig:
    """The reference result: the gate fails when |metric - value| > tolerance (full runs only)."""

    value: float
    tolerance: float = DEFAULT_TOLERANCE
    metric: str = "AP"
    # The figure belongs to this model file and image selection: a run of another model or
    # selection is "not comparable" instead of failing (null: any).
    model_sha256: str | None = None
    selection: Literal["annotated", "all"] | None = None


@dataclass(frozen=True)
class GateConfig:
    """Accuracy rules beside `expected`; each is off when null. Failed rules make the run exit 1."""

    metric: str = "AP"  # the COCO stat the rules below read (one of AP AP50 ... ARl)
    min_ap: float | None = None  # fail when metric < min_ap
    baseline: Path | None = None  # a baseline file (results/baselines/*.json; see `ssd-eval baseline`)
    max_baseline_drop: float | None = None  # fail when baseline[metric] - metric > this
    # Fail when a category's AP is lower than in the baseline by more than this (measured baselines only).
    max_class_baseline_drop: float | None = None
    # Stats held to the baseline's figures both ways: |stat - figure| <= baseline_tolerance plus half a
    # unit of the figure's last published digit (e.g. [AP, AP50, APs, AR100]; empty: off).
    baseline_stats: tuple[str, ...] = ()
    baseline_tolerance: float = 0.001
    class_min_gt: int = 1  # categories with fewer ground-truth boxes are not gated per class
    # true: NO VERDICT (no rule evaluated: none set, all skipped or not comparable) exits 1, as a
    # failure does; a partial run (shard, limit) still exits 0: its rules are deferred to the merge.
    required: bool = False
    # true: runs of another model file (an int8 or fp16 conversion) are held against the baseline's
    # (and `expected`'s) figures; false: such a run is "not comparable" to them.
    any_model: bool = False


@dataclass(frozen=True)
class AssetsConfig:
    """Where fetched models and data are cached, and whether fetching is allowed."""

    cache: Path | None = None  # None: $SSD_EVAL_HOME, else $XDG_CACHE_HOME/ssd_eval, else ~/.cache/ssd_eval
    mirror: str | None = None
    download: bool = True


@dataclass(frozen=True)
class ReportConfig:
    """What a run's report draws beside summary.md (nothing of it changes the figures or the verdict)."""

    pr_curve: bool = True  # the run's precision-recall curve, pr_curve.png (needs matplotlib)
    # The images where the model is most wrong against the ground truth (missed ground-truth boxes plus
    # extra detections), drawn into pictures/; 0: none.
    pictures: int = 0
    min_score: float = 0.3  # detections drawn (and counted as extra) score at least this
    max_side: int = 640  # pictures are drawn this many pixels on their longer side


@dataclass(frozen=True)
class RunConfig:
    """Everything one evaluation run needs, resolved and validated."""

    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    providers: tuple[ProviderConfig, ...] = (ProviderConfig(),)
    session: SessionConfig = field(default_factory=SessionConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    expected: ExpectedConfig | None = None
    gate: GateConfig = field(default_factory=GateConfig)
    assets: AssetsConfig = field(default_factory=AssetsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    # Where this config came from; not a YAML key.
    source_file: Path | None = field(default=None, metadata={"yaml": False})


def load_config(name: str | Path) -> RunConfig:
    """Read, validate and resolve a YAML config file."""
    raw, path = read_yaml_config(name)
    return config_from_dict(raw, base_dir=absolute(path).parent, source=path)


def config_from_dict(raw: object, *, base_dir: Path, source: Path | None = None) -> RunConfig:
    """Validate a parsed YAML tree into a `RunConfig`; relative paths resolve against `base_dir`."""
    where = str(source) if source is not None else "config"
    config = parse_section(raw, RunConfig, base_dir=base_dir, where=where)
    config = dataclasses.replace(config, source_file=source)
    _check_values(config, where)
    return config


def _check_values(config: RunConfig, where: str) -> None:
    """Checks that span more than one value's type."""
    problems: list[tuple[str, str]] = []
    if config.model.path is None and config.model.source is None:
        problems.append(("model", "set `path` (an ONNX file) or `source` (a known model, e.g. ssd-10)"))
    problems.extend(check_dataset_values(config.dataset, "dataset"))
    problems.extend(check_preprocess_values(config.preprocess, "preprocess"))
    if not config.providers:
        problems.append(("providers", "list at least one execution provider, e.g. [{name: cpu}]"))
    problems.extend(check_session_values(config.session, "session"))
    problems.extend(check_decode_values(config.decode, "decode"))
    if config.expected is not None:
        problems.extend(check_expected_values(config.expected, "expected"))
    problems.extend(check_gate_values(config.gate, "gate"))
    problems.extend(check_output_values(config.output, "output"))
    problems.extend(check_report_values(config.report, "report"))
    raise_first_problem(problems, where)


def check_report_values(report: ReportConfig, key: str) -> list[tuple[str, str]]:
    """Impossible picture settings."""
    problems: list[tuple[str, str]] = []
    if report.pictures < 0:
        problems.append((f"{key}.pictures", f"must be a number of images >= 0, got {report.pictures}"))
    if not 0.0 <= report.min_score < 1.0:
        problems.append((f"{key}.min_score", f"must be in [0, 1), got {report.min_score}"))
    if report.max_side < 64:
        problems.append((f"{key}.max_side", f"must be >= 64 pixels, got {report.max_side}"))
    return problems


# The checks of one section each, as (dotted key, message) pairs under the section's key: the run
# config and the comparison config share them, so both refuse the same values in the same words.


def check_dataset_values(dataset: DatasetConfig, key: str) -> list[tuple[str, str]]:
    """Impossible dataset settings, the missing root or source among them."""
    problems: list[tuple[str, str]] = []
    if dataset.root is None and dataset.source is None:
        problems.append((key, "set `root` (a COCO folder) or `source` (e.g. coco-val2017)"))
    if dataset.limit is not None and dataset.limit < 1:
        problems.append((f"{key}.limit", f"must be >= 1 or null, got {dataset.limit}"))
    if not 1 <= dataset.max_image_pixels <= 2 * PILLOW_MAX_IMAGE_PIXELS:
        problems.append(
            (
                f"{key}.max_image_pixels",
                f"must be between 1 and {2 * PILLOW_MAX_IMAGE_PIXELS} (Pillow refuses larger images), "
                f"got {dataset.max_image_pixels}",
            )
        )
    return problems


def check_preprocess_values(preprocess: PreprocessConfig, key: str) -> list[tuple[str, str]]:
    """Impossible preprocessing settings.

    The card normalizes pixels scaled to [0, 1]: mean and std on that scale. Values above 1 are
    almost surely ImageNet's 0-255 figures (123.675, ...), which would leave every input near
    -2 and bring AP to ~0.001 without a word.
    """
    problems: list[tuple[str, str]] = []
    if preprocess.size is not None and preprocess.size < 32:
        problems.append((f"{key}.size", f"must be >= 32 or null, got {preprocess.size}"))
    if preprocess.size is not None and preprocess.size > MAX_INPUT_SIZE:
        problems.append(
            (f"{key}.size", f"must be at most {MAX_INPUT_SIZE} (pixels a side), got {preprocess.size}")
        )
    if preprocess.workers is not None and preprocess.workers < 0:
        problems.append((f"{key}.workers", f"must be >= 0 or null, got {preprocess.workers}"))
    if preprocess.workers is not None and preprocess.workers > MAX_WORKERS:
        problems.append(
            (
                f"{key}.workers",
                f"must be at most {MAX_WORKERS} (threads decoding ahead), got {preprocess.workers}",
            )
        )
    for name, values, card, low in (
        ("mean", preprocess.mean, IMAGENET_MEAN, "[0, 1]"),
        ("std", preprocess.std, IMAGENET_STD, "(0, 1]"),
    ):
        in_range = all((v >= 0 if name == "mean" else v > 0) and v <= 1 for v in values)
        if in_range:
            continue
        shown = ", ".join(f"{v:g}" for v in values)
        expected = f"the card's are [{', '.join(f'{v:g}' for v in card)}]"
        if all(math.isfinite(v) for v in values) and any(1 < v <= 255 for v in values):
            problem = (
                f"[{shown}] has values above 1, which suggests the 0-255 scale; pixels are scaled to "
                f"[0, 1] before normalizing, so give {name} on that scale (divide by 255): {expected}"
            )
        else:
            problem = f"[{shown}]: every value must be in {low}; {expected}"
        problems.append((f"{key}.{name}", problem))
    return problems


def check_session_values(session: SessionConfig, key: str) -> list[tuple[str, str]]:
    """Impossible onnxruntime session settings."""
    return [
        (
            f"{key}.{name}",
            f"must be between 0 (onnxruntime's default) and {MAX_THREADS}, got {getattr(session, name)}",
        )
        for name in ("intra_op_threads", "inter_op_threads")
        if not 0 <= getattr(session, name) <= MAX_THREADS
    ]


def check_decode_values(decode: DecodeConfig, key: str) -> list[tuple[str, str]]:
    """Impossible decode settings."""
    if not 0.0 <= decode.score_threshold < 1.0:
        return [(f"{key}.score_threshold", "must be in [0, 1)")]
    return []


def check_output_values(output: OutputConfig, key: str) -> list[tuple[str, str]]:
    """Impossible output settings."""
    problem = run_name_problem(output.run_name) if output.run_name is not None else None
    return [(f"{key}.run_name", problem)] if problem is not None else []


def run_name_problem(name: str) -> str | None:
    """Why `name` cannot name a run folder (None: it can): it must be one folder name, not a path."""
    if name.strip() in ("", ".", ".."):
        return f"must be a folder name, got {name!r}"
    # Both separators on every platform (os.sep and os.altsep are among them): a name must mean one
    # folder wherever the run folder is read.
    separators = [s for s in ("/", "\\") if s in name]
    if separators or "\0" in name:
        return (
            f"must be one folder name without {separators[0] if separators else 'NUL'!r}, got {name!r} "
            "(the run folder goes into output.dir / --output)"
        )
    return None


def check_expected_values(expected: ExpectedConfig, key: str) -> list[tuple[str, str]]:
    """Impossible `expected` settings as (dotted key, message) pairs."""
    problems: list[tuple[str, str]] = []
    if expected.metric not in STAT_NAMES:
        problems.append((f"{key}.metric", f"must be one of {' '.join(STAT_NAMES)}, got {expected.metric!r}"))
    if not 0.0 <= expected.value <= 1.0:
        problems.append(
            (f"{key}.value", f"must be a COCO stat in [0, 1] (0.195, not 19.5), got {expected.value}")
        )
    if expected.tolerance < 0:
        problems.append((f"{key}.tolerance", f"must be >= 0, got {expected.tolerance}"))
    sha = expected.model_sha256
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha)):
        problems.append((f"{key}.model_sha256", "must be 64 hexadecimal digits (a sha256) or null"))
    return problems


def check_gate_values(gate: GateConfig, key: str) -> list[tuple[str, str]]:
    """Impossible gate settings (the comparison config's gate adds its own keys)."""
    problems: list[tuple[str, str]] = []
    if gate.metric not in STAT_NAMES:
        problems.append((f"{key}.metric", f"must be one of {' '.join(STAT_NAMES)}, got {gate.metric!r}"))
    for name in ("min_ap", "max_baseline_drop", "max_class_baseline_drop", "baseline_tolerance"):
        value = getattr(gate, name)
        if value is not None and not 0.0 <= value <= 1.0:
            problems.append((f"{key}.{name}", f"must be in [0, 1] or null, got {value}"))
    for index, stat in enumerate(gate.baseline_stats):
        if stat not in STAT_NAMES:
            problems.append(
                (f"{key}.baseline_stats[{index}]", f"must be one of {' '.join(STAT_NAMES)}, got {stat!r}")
            )
    needs_baseline = (
        gate.max_baseline_drop is not None
        or gate.max_class_baseline_drop is not None
        or bool(gate.baseline_stats)
    )
    if needs_baseline and gate.baseline is None:
        problems.append(
            (
                f"{key}.baseline",
                "set a baseline file for max_baseline_drop / max_class_baseline_drop / baseline_stats",
            )
        )
    if gate.baseline is not None and not needs_baseline:
        problems.append((f"{key}.max_baseline_drop", "set it (e.g. 0.003) to gate against the baseline"))
    if gate.class_min_gt < 0:
        problems.append((f"{key}.class_min_gt", "must be >= 0"))
    return problems
