"""The run configuration: a tree of frozen dataclasses, loaded strictly from YAML.

Every unknown key, wrong type or impossible value is a `ConfigError` naming the config file and
the dotted key path (`providers[1].name`), raised before any model or image is loaded. Relative
paths resolve against the folder of the config file; a bare config name also finds the configs
bundled with the package.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from ssd_eval.errors import ConfigError

T = TypeVar("T")

BUNDLED_CONFIG_DIR = Path(__file__).resolve().parent / "configs"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
    limit: int | None = None
    on_bad_image: Literal["stop", "skip"] = "stop"


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

    # pycocotools: the reference; faster-coco-eval: same 12 stats, ~5x faster, less memory
    # (pip install 'ssd_eval[fast]').
    backend: Literal["pycocotools", "faster-coco-eval"] = "pycocotools"


@dataclass(frozen=True)
class OutputConfig:
    """Where a run's files go: `<dir>/<run_name>/`."""

    dir: Path | None = None  # None: ./results in the current folder
    run_name: str | None = None  # None: <config name>-<provider>-<timestamp>
    overwrite: bool = False


@dataclass(frozen=True)
class ExpectedConfig:
    """The reference result: the gate fails when |metric - value| > tolerance."""

    value: float
    tolerance: float
    metric: str = "AP"


@dataclass(frozen=True)
class GateConfig:
    """Accuracy rules beside `expected`; each is off when null. Failed rules make the run exit 1."""

    metric: str = "AP"  # the COCO stat the rules below read (one of AP AP50 ... ARl)
    min_ap: float | None = None  # fail when metric < min_ap
    baseline: Path | None = None  # a baseline file (results/baselines/*.json; see `ssd-eval baseline`)
    max_baseline_drop: float | None = None  # fail when baseline[metric] - metric > this
    # Fail when a category's AP is lower than in the baseline by more than this (measured baselines only).
    max_class_baseline_drop: float | None = None
    class_min_gt: int = 1  # categories with fewer ground-truth boxes are not gated per class


@dataclass(frozen=True)
class AssetsConfig:
    """Where fetched models and data are cached, and whether fetching is allowed."""

    cache: Path | None = None  # None: $SSD_EVAL_HOME, else $XDG_CACHE_HOME/ssd_eval, else ~/.cache/ssd_eval
    mirror: str | None = None
    download: bool = True


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
    # Where this config came from; not a YAML key.
    source_file: Path | None = field(default=None, metadata={"yaml": False})


def find_config(name: str | Path) -> Path:
    """The config file a user means: a path as given, else a bundled config of that name."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    for candidate in (BUNDLED_CONFIG_DIR / path.name, BUNDLED_CONFIG_DIR / f"{path.name}.yaml"):
        if path.parent == Path(".") and candidate.is_file():
            return candidate
    bundled = ", ".join(sorted(p.name for p in BUNDLED_CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config file {str(name)!r} not found (bundled configs: {bundled})")


def read_yaml_config(name: str | Path) -> tuple[object, Path]:
    """Find and parse a YAML config file: its tree (`{}` when empty) and its path."""
    path = find_config(name)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    return ({} if raw is None else raw), path


def load_config(name: str | Path) -> RunConfig:
    """Read, validate and resolve a YAML config file."""
    raw, path = read_yaml_config(name)
    return config_from_dict(raw, base_dir=path.absolute().parent, source=path)


def config_from_dict(raw: object, *, base_dir: Path, source: Path | None = None) -> RunConfig:
    """Validate a parsed YAML tree into a `RunConfig`; relative paths resolve against `base_dir`."""
    where = str(source) if source is not None else "config"
    config = parse_section(raw, RunConfig, base_dir=base_dir, where=where)
    config = dataclasses.replace(config, source_file=source)
    _check_values(config, where)
    return config


def parse_section(raw: object, cls: type[T], *, base_dir: Path, where: str, key: str = "") -> T:
    """Validate a parsed YAML value into any frozen-dataclass schema (for configs other than RunConfig).

    Errors are `ConfigError`s naming `where` (the file) and the dotted key path under `key`.
    """
    try:
        converted: T = _convert(raw, cls, key, _Context(base_dir=base_dir))
    except _KeyError as exc:
        raise ConfigError(f"{where}: {exc.path or '<top level>'}: {exc.message}") from None
    return converted


def _check_values(config: RunConfig, where: str) -> None:
    """Checks that span more than one value's type."""
    problems: list[tuple[str, str]] = []
    if config.model.path is None and config.model.source is None:
        problems.append(("model", "set `path` (an ONNX file) or `source` (a known model, e.g. ssd-10)"))
    if config.dataset.root is None and config.dataset.source is None:
        problems.append(("dataset", "set `root` (a COCO folder) or `source` (e.g. coco-val2017)"))
    if config.dataset.limit is not None and config.dataset.limit < 1:
        problems.append(("dataset.limit", f"must be >= 1 or null, got {config.dataset.limit}"))
    if config.preprocess.size is not None and config.preprocess.size < 32:
        problems.append(("preprocess.size", f"must be >= 32 or null, got {config.preprocess.size}"))
    if config.preprocess.workers is not None and config.preprocess.workers < 0:
        problems.append(("preprocess.workers", f"must be >= 0 or null, got {config.preprocess.workers}"))
    if any(s <= 0 for s in config.preprocess.std):
        problems.append(("preprocess.std", "every value must be > 0"))
    if not config.providers:
        problems.append(("providers", "list at least one execution provider, e.g. [{name: cpu}]"))
    for key in ("intra_op_threads", "inter_op_threads"):
        if getattr(config.session, key) < 0:
            problems.append((f"session.{key}", "must be >= 0 (0: onnxruntime's default)"))
    if not 0.0 <= config.decode.score_threshold < 1.0:
        problems.append(("decode.score_threshold", "must be in [0, 1)"))
    if config.expected is not None and config.expected.tolerance < 0:
        problems.append(("expected.tolerance", "must be >= 0"))
    problems.extend(check_gate_values(config.gate, "gate"))
    problems.extend(check_output_values(config.output))
    raise_first_problem(problems, where)


def check_output_values(output: OutputConfig) -> list[tuple[str, str]]:
    """Impossible output settings as (dotted key, message) pairs; shared with the compare config."""
    name = output.run_name
    if name is not None and ("/" in name or name in ("", ".", "..")):
        return [("output.run_name", "must be a plain folder name")]
    return []


def raise_first_problem(problems: list[tuple[str, str]], where: str) -> None:
    """The first (dotted key, message) problem as a ConfigError naming the config file."""
    if problems:
        key, message = problems[0]
        raise ConfigError(f"{where}: {key}: {message}")


def check_gate_values(gate: GateConfig, key: str) -> list[tuple[str, str]]:
    """Impossible gate settings as (dotted key, message) pairs; shared with the compare config."""
    from ssd_eval.scoring import STAT_NAMES

    problems: list[tuple[str, str]] = []
    if gate.metric not in STAT_NAMES:
        problems.append((f"{key}.metric", f"must be one of {' '.join(STAT_NAMES)}, got {gate.metric!r}"))
    for name in ("min_ap", "max_baseline_drop", "max_class_baseline_drop"):
        value = getattr(gate, name)
        if value is not None and not 0.0 <= value <= 1.0:
            problems.append((f"{key}.{name}", f"must be in [0, 1] or null, got {value}"))
    needs_baseline = gate.max_baseline_drop is not None or gate.max_class_baseline_drop is not None
    if needs_baseline and gate.baseline is None:
        problems.append(
            (f"{key}.baseline", "set a baseline file for max_baseline_drop / max_class_baseline_drop")
        )
    if gate.baseline is not None and not needs_baseline:
        problems.append((f"{key}.max_baseline_drop", "set it (e.g. 0.003) to gate against the baseline"))
    if gate.class_min_gt < 0:
        problems.append((f"{key}.class_min_gt", "must be >= 0"))
    return problems


@dataclass(frozen=True)
class _Context:
    base_dir: Path


class _KeyError(Exception):
    """A validation failure at a dotted key path (internal; becomes a ConfigError)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: object) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _convert(value: object, annotation: Any, path: str, ctx: _Context) -> Any:
    """Check `value` against a type annotation and convert it (dataclasses, paths, tuples)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _convert(value, non_none[0], path, ctx)
        raise _KeyError(path, f"unsupported union {annotation}")  # pragma: no cover - schema bug
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _convert_dataclass(value, annotation, path, ctx)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise _KeyError(path, f"must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise _KeyError(path, f"expected a list, got {_type_name(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]", ctx) for i, v in enumerate(value))
        if len(value) != len(args):
            raise _KeyError(path, f"expected a list of {len(args)} values, got {len(value)}")
        return tuple(
            _convert(v, a, f"{path}[{i}]", ctx) for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise _KeyError(path, f"expected a mapping, got {_type_name(value)}")
        for key in value:
            if not isinstance(key, str):
                raise _KeyError(path, f"keys must be strings, got {key!r}")
        return dict(value)
    if annotation is Path:
        if not isinstance(value, str) or not value:
            raise _KeyError(path, f"expected a path (a string), got {_type_name(value)}")
        resolved = Path(value).expanduser()
        return resolved if resolved.is_absolute() else ctx.base_dir / resolved
    if annotation is bool:
        if not isinstance(value, bool):
            raise _KeyError(path, f"expected true or false, got {_type_name(value)} {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _KeyError(path, f"expected an integer, got {_type_name(value)} {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _KeyError(path, f"expected a number, got {_type_name(value)} {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise _KeyError(path, f"expected a string, got {_type_name(value)} {value!r}")
        return value
    if annotation is Any:
        return value
    raise _KeyError(path, f"unsupported type {annotation}")  # pragma: no cover - schema bug


def _convert_dataclass(value: object, cls: type, path: str, ctx: _Context) -> Any:
    if not isinstance(value, dict):
        raise _KeyError(path, f"expected a mapping, got {_type_name(value)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}
    for key in value:
        if key not in fields:
            known = ", ".join(fields)
            raise _KeyError(_join(path, str(key)), f"unknown key (known keys here: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(value[name], hints[name], _join(path, name), ctx)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _KeyError(_join(path, name), "missing required key")
    return cls(**kwargs)


def config_to_dict(config: Any) -> Any:
    """A config (or any part of it) as plain YAML/JSON data: paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {
            f.name: config_to_dict(getattr(config, f.name))
            for f in dataclasses.fields(config)
            if f.metadata.get("yaml", True)
        }
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: config_to_dict(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config
