"""`ssd-eval import`: an ordinary run folder from detections made elsewhere.

A C++ TensorRT pipeline, a Triton server or the MLPerf harness writes its detections as a COCO results
file or an MLPerf accuracy log; importing one checks every record, keeps the images of the evaluated
selection, and writes the run folder `ssd-eval run` would have written (config.yaml, identity.json,
run_info.json, history.jsonl, detections.jsonl), finished and gated by the same code (engine/finish.py).
`score`, `baseline`, the diagnosis and `compare` then work on it unchanged; `compare` against an
onnxruntime run gives the detection-level agreement of the two harnesses, image by image.

Its identity records where the detections came from (`DetectionSource`: format, the file's sha256, the
producer, the image order, what was ignored) and the model as NOT_KNOWN unless named (`model`: a file
or a known model name; `model_sha256`): rules tied to a model's sha256 are then not comparable.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

from ssd_eval.config.run import ProviderConfig, RunConfig, config_from_dict, load_config, run_name_problem
from ssd_eval.data.dataset import CocoGroundTruth, IdList, Selection, open_ground_truth, reselect
from ssd_eval.engine.finish import finish_run, gate_scored_run
from ssd_eval.engine.resolve import resolve_data
from ssd_eval.engine.run_folder import (
    RunInfo,
    append_history,
    check_run_folder_free,
    check_writable,
    folder_rules,
    locked_run_folder,
    prepare_run_folder,
    run_baseline,
    write_identity,
    write_run_info,
)
from ssd_eval.errors import ConfigError, DetectionsFileError
from ssd_eval.evaluation.detection_log import DetectionLog
from ssd_eval.evaluation.identity import (
    NOT_KNOWN,
    DetectionSource,
    RunIdentity,
    ground_truth_and_images,
    ids_digest,
)
from ssd_eval.evaluation.imports import ImportedDetections
from ssd_eval.evaluation.imports.coco_results import read_coco_results
from ssd_eval.evaluation.imports.mlperf_log import IMAGE_ORDERS, ImageOrder, image_order, read_mlperf_log
from ssd_eval.files import DETECTION_LOG, file_sha256, sha256_bytes
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.results import ModelInfo, provenance
from ssd_eval.reports.verdict import Evaluation, Invocation

ImportFormat = Literal["coco-results", "mlperf"]
IMPORT_FORMATS: tuple[ImportFormat, ...] = get_args(ImportFormat)
IMPORTED_PROVIDER = "imported"  # the provider an imported run records: no onnxruntime session ran
DEFAULT_CONFIG = "coco_val.yaml"  # whose gate rules (the published 0.195 of ssd-10) an import is held to

_PathArg: TypeAlias = str | os.PathLike[str]
_CONFIG_NOTE = (
    "# Imported detections (`ssd-eval import`): nothing below was run. The model, providers and\n"
    "# preprocess sections did not make them; identity.json says what is known (its `source`, and the\n"
    '# model\'s sha256 or "not known"). The dataset, scoring, expected and gate sections apply.\n'
)


def _key(name: str, flags: bool) -> str:
    return f"--{name.replace('_', '-')}" if flags else name


def import_detections(
    file: _PathArg,
    *,
    data: _PathArg | None = None,
    format: str | None = None,
    config: _PathArg | Mapping[str, Any] | RunConfig | None = None,
    output: _PathArg | None = None,
    run_name: str | None = None,
    producer: str | None = None,
    model: _PathArg | None = None,
    model_sha256: str | None = None,
    selection: str | None = None,
    image_order: str | None = None,
    ignore_extra: bool = False,
    overwrite: bool = False,
    require_gate: bool = False,
    invocation: Invocation | None = None,
) -> Evaluation:
    """Import detections made elsewhere into a new run folder, score and gate it; the gated run.

    file: a COCO results file or an MLPerf accuracy log (`format`: "coco-results" or "mlperf"; None:
        told from the file's first record). data: the COCO root the detections were made on (default:
        the config's dataset). config: whose dataset, scoring, expected and gate sections apply (default:
        the bundled coco_val.yaml: the published protocol and ssd-10's figures).
    output, run_name: where the run folder goes (default ./results, `import-<format>-<time>`).
    producer: what made the detections, in words ("TensorRT 8.6 fp16"), recorded in the identity.
    model: the model file (or a known model name such as "ssd-10") that made them; model_sha256: its
        sha256. Neither: the model is "not known" and rules tied to a model's sha256 are not comparable.
    selection: "annotated" or "all" (default: the config's for a COCO results file; for an MLPerf log,
        "all" for image order "file", else "annotated"). Records of images outside it are refused with
        their count, or left out with `ignore_extra` (recorded).
    image_order: MLPerf only, the image list qsl_idx indexes: "file" (default), "annotated" or
        "annotated-set" (see docs/import.md). overwrite: replace an existing run folder.
    """
    invocation = invocation or Invocation.of_call(
        "ssd_eval.import_detections",
        file,
        data=data,
        format=format,
        config="<RunConfig>" if isinstance(config, RunConfig) else config,
        output=output,
        run_name=run_name,
        producer=producer,
        model=model,
        model_sha256=model_sha256,
        selection=selection,
        image_order=image_order,
        ignore_extra=ignore_extra,
        overwrite=overwrite,
        require_gate=require_gate,
    )
    flags = invocation.flags
    if producer is not None and (
        not isinstance(producer, str) or len(producer) > 200 or any(not ch.isprintable() for ch in producer)
    ):
        raise ConfigError(
            f"{_key('producer', flags)}: give one line of printable text of at most 200 characters "
            f'(e.g. "TensorRT 8.6 fp16"), got {producer!r:.80}'
        )
    path = Path(file)
    content = _read(path)
    kind = _format(content, path, format, flags)
    order = _image_order(kind, image_order, flags)
    chosen = _selection(selection, kind, order, flags)
    run_config = _run_config(config, data=data, selection=chosen, output=output, overwrite=overwrite)
    if require_gate:
        run_config = dataclasses.replace(run_config, gate=dataclasses.replace(run_config.gate, required=True))
    model_info = _model_info(model, model_sha256, flags)
    if model is not None and Path(model).exists():
        run_config = dataclasses.replace(
            run_config, model=dataclasses.replace(run_config.model, path=Path(model).absolute(), source=None)
        )
    name = run_name if run_name is not None else f"import-{kind}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    problem = run_name_problem(name) if isinstance(name, str) else f"must be a folder name, got {name!r}"
    if problem is not None:
        raise ConfigError(f"{_key('run_name', flags)} {problem}")
    run_config = dataclasses.replace(run_config, output=dataclasses.replace(run_config.output, run_name=name))

    gt = _ground_truth(run_config)
    imported = _parse(content, path, kind, order, gt)
    gt, detections, extra = _fit(imported, gt, path, kind, ignore_extra, flags)
    without = [i for i in gt.image_ids if i not in imported.detections]
    # A results file of a subset (a --limit run's detections.json) scored on the whole selection: said.
    warnings = (
        [
            f"{len(without)} of {len(gt.image_ids)} images have no record in {path.name} and are scored as "
            f"images without detections (e.g. image {without[0]}); if the file is of a subset, this AP is "
            "not that subset's"
        ]
        if without
        else []
    )
    source = DetectionSource(
        format=kind,
        file_name=path.name,
        file_sha256=sha256_bytes(content),
        producer=producer or None,
        image_order=order,
        ignore_extra=ignore_extra,
        extra_ignored=extra,
        repeats_ignored=imported.repeats,
        partial=gt.id_list is not None,
    )
    base = run_config.output.dir if run_config.output.dir is not None else Path.cwd() / "results"
    folder = base / name
    check_writable(folder)
    check_run_folder_free(folder, run_config, resume=False)
    baseline = run_baseline(
        run_config, folder, resume=False
    )  # a bad baseline fails before anything is written
    info = RunInfo(
        model=model_info,
        input_size=None,
        shard=None,
        providers_requested=(IMPORTED_PROVIDER,),
        providers_used=(f"{IMPORTED_PROVIDER}: {producer}" if producer else IMPORTED_PROVIDER,),
        provider_options=(),
    )
    with locked_run_folder(folder):
        prepare_run_folder(folder, run_config, resume=False, note=_CONFIG_NOTE)
        identity = _identity(gt, run_config, folder, model_info, source)
        write_run_info(folder, info)
        write_identity(folder, identity)
        with DetectionLog(folder / DETECTION_LOG) as log:
            for image_id in gt.image_ids:
                log.append(detections[image_id])
        append_history(folder, provenance(invocation.started, invocation.command, verb="import", folder=name))
        result = finish_run(
            folder,
            run_config,
            gt,
            detections,
            {},
            info,
            identity=identity,
            timings={},
            wall_s=0.0,
            images_per_s=0.0,
            warnings=warnings,
        )
    return gate_scored_run(result, run_config, baseline, verb="import")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DetectionsFileError(
            f"{path} not found: give a COCO results file or an MLPerf accuracy log (mlperf_log_accuracy.json)"
        ) from None
    except OSError as exc:
        raise DetectionsFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _format(content: bytes, path: Path, given: str | None, flags: bool) -> ImportFormat:
    """The given format, or the one the file's first record shows (`qsl_idx`: MLPerf; `image_id`: COCO)."""
    if given is not None:
        if given not in IMPORT_FORMATS:
            raise ConfigError(
                f"{_key('format', flags)}: must be one of {', '.join(IMPORT_FORMATS)}, got {given!r}"
            )
        return given
    head = content[:4096].decode("utf-8", errors="replace")
    if not head.strip():
        raise DetectionsFileError(
            f"{path} is empty: give a COCO results file or an MLPerf accuracy log (a JSON list)"
        )
    first = re.search(r'"(qsl_idx|image_id)"', head)
    if first is None:
        raise DetectionsFileError(
            f"{path}: its first record has neither qsl_idx (an MLPerf accuracy log) nor image_id (a COCO "
            f"results file): give {_key('format', flags)} coco-results or mlperf"
        )
    return "mlperf" if first[1] == "qsl_idx" else "coco-results"


def _image_order(kind: ImportFormat, given: str | None, flags: bool) -> ImageOrder | None:
    if kind != "mlperf":
        if given is not None:
            raise ConfigError(
                f"{_key('image_order', flags)} is for MLPerf logs (qsl_idx); a COCO results file names "
                "its images"
            )
        return None
    if given is None:
        return "file"
    if given not in IMAGE_ORDERS:
        raise ConfigError(
            f"{_key('image_order', flags)}: must be one of {', '.join(IMAGE_ORDERS)}, got {given!r}"
        )
    return given


def _selection(
    given: str | None, kind: ImportFormat, order: ImageOrder | None, flags: bool
) -> Selection | None:
    """The evaluated selection: the given one; for an MLPerf log, the images its image order lists."""
    if given is not None:
        if given == "annotated":
            return "annotated"
        if given == "all":
            return "all"
        raise ConfigError(f"{_key('selection', flags)}: must be annotated or all, got {given!r}")
    if kind == "mlperf":
        return "all" if order == "file" else "annotated"
    return None  # the config's


def _run_config(
    config: _PathArg | Mapping[str, Any] | RunConfig | None,
    *,
    data: _PathArg | None,
    selection: Selection | None,
    output: _PathArg | None,
    overwrite: bool,
) -> RunConfig:
    """The config whose dataset, scoring and gate sections the import takes, with the options on top."""
    replace = dataclasses.replace
    if isinstance(config, RunConfig):
        run_config = config
    elif isinstance(config, Mapping):
        run_config = config_from_dict(dict(config), base_dir=Path.cwd())
    else:
        run_config = load_config(os.fspath(config) if config is not None else DEFAULT_CONFIG)
    dataset = run_config.dataset
    if data is not None:
        dataset = replace(dataset, root=Path(data).absolute(), source=None)
    if selection is not None:
        dataset = replace(dataset, selection=selection)
    # Every image of the selection: an import has no limit, id list or shard of its own.
    dataset = replace(dataset, limit=None, image_ids=None)
    out = run_config.output
    if output is not None:
        out = replace(out, dir=Path(output).absolute())
    if overwrite:
        out = replace(out, overwrite=True)
    return replace(
        run_config, dataset=dataset, output=out, providers=(ProviderConfig(name=IMPORTED_PROVIDER),)
    )


def _model_info(model: _PathArg | None, model_sha256: str | None, flags: bool) -> ModelInfo:
    """What is known of the model that made the detections: a file, a known model name, a sha256, or
    not known."""
    sha = None
    if model_sha256 is not None:
        sha = str(model_sha256).lower()
        if re.fullmatch("[0-9a-f]{64}", sha) is None:
            raise ConfigError(
                f"{_key('model_sha256', flags)}: must be a sha256 (64 hexadecimal digits), got "
                f"{model_sha256!r}"
            )
    if model is None:
        from ssd_eval.assets.sources import MODELS

        known = next((m for m in MODELS.values() if sha is not None and m.sha256.lower() == sha), None)
        name = known.filename if known is not None else ""
        return ModelInfo(
            path=name, sha256=sha or NOT_KNOWN, size_bytes=known.size if known else 0, source=None
        )
    path = Path(model)
    if path.is_file():
        info = ModelInfo(str(path.absolute()), file_sha256(path), path.stat().st_size, None)
    else:
        from ssd_eval.assets.sources import MODELS

        if os.fspath(model) not in MODELS:
            raise ConfigError(
                f"{_key('model', flags)} {os.fspath(model)!r} is neither a file nor a known model name "
                f"({', '.join(MODELS)}); or give {_key('model_sha256', flags)}"
            )
        known = MODELS[os.fspath(model)]
        info = ModelInfo(known.filename, known.sha256.lower(), known.size, known.name)
    if sha is not None and sha != info.sha256:
        raise ConfigError(
            f"{_key('model', flags)} {os.fspath(model)} has sha256 {info.sha256[:12]}… but "
            f"{_key('model_sha256', flags)} is {sha[:12]}…: give one of them"
        )
    return info


def _ground_truth(config: RunConfig) -> CocoGroundTruth:
    """The annotation file and the evaluated selection (the images themselves are not needed: a known
    data set is fetched without them; a folder of them, if there is one, is where pictures come from)."""
    annotation_file, image_dir = resolve_data(config, images=False)
    folder = image_dir if image_dir.is_dir() else annotation_file.parent
    return open_ground_truth(annotation_file, folder, selection=config.dataset.selection)


def _parse(
    content: bytes, path: Path, kind: ImportFormat, order: ImageOrder | None, gt: CocoGroundTruth
) -> ImportedDetections:
    data = gt.coco_json
    if kind == "coco-results":
        return read_coco_results(
            content,
            source=str(path),
            image_ids=[int(im["id"]) for im in data["images"]],
            category_ids=[int(c["id"]) for c in data["categories"]],
            annotations=gt.annotation_file.name,
            image_sizes={int(im["id"]): (int(im["width"]), int(im["height"])) for im in data["images"]},
        )
    assert order is not None  # _image_order gives an MLPerf log one
    return read_mlperf_log(
        content, source=str(path), images=image_order(data, order), order=order, label_map=gt.label_map
    )


def _fit(
    imported: ImportedDetections,
    gt: CocoGroundTruth,
    path: Path,
    kind: ImportFormat,
    ignore_extra: bool,
    flags: bool,
) -> tuple[CocoGroundTruth, dict[int, Detections], int]:
    """The evaluated images and their detections: records of other images refused (or ignored: their
    count); a COCO results file covers the whole selection (an image without records has no
    detections), an MLPerf log the images it has entries for (as accuracy-coco.py scores them)."""
    wanted = set(gt.image_ids)
    extra = sorted(i for i in imported.detections if i not in wanted)
    unit = "record" if kind == "coco-results" else "entry"
    count = sum(len(imported.detections[i]) for i in extra) if kind == "coco-results" else len(extra)
    if extra and not ignore_extra:
        raise DetectionsFileError(_one_line_extra(path, count, unit, extra, gt, flags))
    found = {i: d for i, d in imported.detections.items() if i in wanted}
    if kind == "mlperf" and set(found) != wanted:
        if not found:
            raise DetectionsFileError(
                f"{path}: no entry is for an image of the evaluated selection ({gt.selection})"
            )
        covered = frozenset(found)
        listed = IdList(path=path, ids=covered, sha256=ids_digest(covered))
        gt = reselect(gt, selection=gt.selection, limit=None, shard=None, id_list=listed)
    detections = {i: found.get(i) or Detections.empty(i) for i in gt.image_ids}
    return gt, detections, count  # 0 unless ignore_extra: extra records without it were refused above


def _one_line_extra(
    path: Path, count: int, unit: str, extra: list[int], gt: CocoGroundTruth, flags: bool
) -> str:
    units = {"record": ("record", "records"), "entry": ("entry", "entries")}[unit]
    return (
        f"{path}: {count} {units[count != 1]} for {len(extra)} image(s) outside the evaluated selection "
        f"({gt.selection}: {len(gt.images)} images of {gt.annotation_file.name}; first: image {extra[0]}): "
        f"import with {_key('selection', flags)} all to score them, or {_key('ignore_extra', flags)} to "
        "leave them out (recorded)"
    )


def _identity(
    gt: CocoGroundTruth, config: RunConfig, folder: Path, model: ModelInfo, source: DetectionSource
) -> RunIdentity:
    """An imported run's identity: the ground truth and images it is scored on, its gate rules, what is
    known of its model, nothing of its preprocessing, and ssd_eval's own decode (no cut, no clipping)."""
    ground_truth, images = ground_truth_and_images(gt)
    return RunIdentity(
        model_sha256=model.sha256,
        model_name=Path(model.path).name,  # "" when the model has no file: Path("").name
        provider=IMPORTED_PROVIDER,
        ground_truth=ground_truth,
        images=images,
        preprocess=NOT_KNOWN,
        input_size=None,
        mean=None,
        std=None,
        score_threshold=0.0,
        clip_boxes=False,
        scorer=config.scoring.backend,
        rules=folder_rules(config, folder),
        source=source,
    )
