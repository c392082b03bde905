"""The Python API: evaluate, score, merge and compare, each the whole of one use.

`evaluate` runs a model over COCO, scores it, applies the gate and writes every file of the run folder
(metrics.json with its gate, junit.xml, summary.md, gate_baseline.json); `score` does the same for a
run folder scored again from its detection log, `merge` for the shards of one run, and `compare` for
finished run folders held against a reference. Each returns a frozen record (`Evaluation`,
`Comparison`), truthy when the verdict is PASS. `ssd-eval` calls these same functions and only prints
what they return, so a notebook, a pytest and the command line get the same verdict, files and exit code.

Failures are `ssd_eval.errors.SsdEvalError` subclasses whose message is the whole story (`ConfigError`
for a bad config or option, `DatasetError`, `ModelError`, `ProviderError`, `OutputError`, ...); nothing
is printed, progress and notes go to `logging` (`logging.basicConfig(level=logging.INFO)` shows them).
Relative paths given here, and in a config given as a mapping, resolve against the current folder.

Provenance: every command that works on a run folder (run, resume, score, merge) is an entry of its
history (history.jsonl, and metrics.json's `history`; `provenance` is the run's own entry), and a
comparison's metrics.json records its command. `ssd-eval` passes its command line (an `Invocation`); a
call from Python records itself, e.g. `("python", "ssd_eval.evaluate", "smoke.yaml", "limit=3",
"provider=cpu")`: the function, its positional arguments, and the options given as key=value (options
left at None or False are left out; a config given as a mapping shows as `<mapping>`). summary.md shows
the same command.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias, cast

from ssd_eval.config.compare import (
    COMPARE_LIMITS,
    CompareConfig,
    CompareSettings,
    check_compare_gate_values,
    compare_config_from_dict,
    load_compare_config,
)
from ssd_eval.config.run import (
    RunConfig,
    config_from_dict,
    load_config,
)
from ssd_eval.config.schema import absolute
from ssd_eval.engine.compare import CompareOptions, record_compare_gate, run_comparison
from ssd_eval.engine.compare_runs import compare_runs
from ssd_eval.engine.finish import gate_scored_run
from ssd_eval.engine.import_run import import_detections
from ssd_eval.engine.merge import plan_merge, write_merge
from ssd_eval.engine.overrides import (
    PathArg,
    check_run_name,
    plain_tree,
    with_baseline,
    with_expected,
    with_model,
    with_options,
    with_run_name,
)
from ssd_eval.engine.overrides import option_key as _key
from ssd_eval.engine.rescore import rescore_run
from ssd_eval.engine.run_folder import (
    BUSY_OTHER,
    check_apart,
    gate_baseline,
    load_run_config,
    locked_run_folder,
)
from ssd_eval.engine.runner import RunOptions, evaluate_run, run_folder
from ssd_eval.errors import ConfigError, OutputError
from ssd_eval.evaluation.scoring import SCORING_BACKENDS, ScoringBackend
from ssd_eval.files import CONFIG_FILE
from ssd_eval.reports.baseline import load_gate_baseline
from ssd_eval.reports.verdict import Comparison, Evaluation, Invocation

__all__ = [
    "Comparison",
    "Evaluation",
    "Invocation",
    "compare",
    "compare_config",
    "compare_settings",
    "evaluate",
    "evaluate_config",
    "import_detections",
    "merge",
    "score",
    "started_run_folder",
    "with_baseline",
    "with_expected",
    "with_model",
    "with_options",
    "with_run_name",
]

ConfigArg: TypeAlias = PathArg | Mapping[str, Any] | RunConfig  # a file, a bundled name, a parsed tree
CompareConfigArg: TypeAlias = PathArg | Mapping[str, Any] | CompareConfig

# --- evaluate ------------------------------------------------------------------------------------------


def evaluate(
    config: ConfigArg | None,
    *,
    model: PathArg | None = None,
    data: PathArg | None = None,
    limit: int | None = None,
    provider: str | Sequence[str] | None = None,
    output: PathArg | None = None,
    run_name: str | None = None,
    resume: PathArg | None = None,
    require_gate: bool = False,
    image_ids: PathArg | None = None,
    baseline: PathArg | None = None,
    max_baseline_drop: float | None = None,
    invocation: Invocation | None = None,
) -> Evaluation:
    """Evaluate a model on COCO, apply the gate and write the run folder; the gated run, truthy on PASS.

    config: a YAML file, the name of a bundled config ("smoke.yaml", "coco_val.yaml"), or a mapping of
        the same keys (validated exactly like a file, paths relative to the current folder); None only
        with `resume`, which continues with the config the run started with.
    model: an ONNX file, or a known model name fetched into the cache ("ssd-10", "ssd-12-int8",
        "twin-1200", ...); replaces model.path / model.source.
    data: a COCO root with annotations/ and val2017/; replaces dataset.root / dataset.source.
    limit: evaluate only the first N images by id.
    provider: an execution provider ("cpu", "cuda", "openvino", or a full name), or a priority list.
    output: the folder that receives the run folder (default ./results); run_name: the run folder's name.
    resume: an interrupted run folder to continue.
    require_gate: NO VERDICT is a failure (exit code 1), as gate.required: true (a shard defers).
    image_ids: a file of image ids (one per line, or a JSON list): evaluate only those images, a fixed
        subset a measured baseline can hold; replaces dataset.image_ids.
    baseline, max_baseline_drop: gate against this baseline file (`ssd-eval baseline`), allowing this
        drop of gate.metric (default: the config's, else 0.003); replace gate.baseline / max_baseline_drop.
    invocation: who asks, for the provenance (the CLI passes its command line); None: this call.

    The result's `stats`, `per_category`, `verdict`, `exit_code`, `folder`, `gate`, `diagnosis` and
    `result` (the RunResult, as metrics.json holds it) are what the run folder's files say.
    """
    invocation = invocation or Invocation.of_call(
        "ssd_eval.evaluate",
        *([] if config is None else [_config_shown(config)]),
        model=model,
        data=data,
        limit=limit,
        provider=provider,
        output=output,
        run_name=run_name,
        resume=resume,
        require_gate=require_gate,
        image_ids=image_ids,
        baseline=baseline,
        max_baseline_drop=max_baseline_drop,
    )
    flags = invocation.flags
    if resume is not None:
        if config is not None:
            raise ConfigError(
                f"{_key('resume', flags)} continues a run with the config it was started with (its "
                f"{CONFIG_FILE}): give no config"
            )
        folder = Path(resume)
        if output is not None or run_name is not None:
            key = _key("output" if output is not None else "run_name", flags)
            raise ConfigError(
                f"{_key('resume', flags)} {folder} continues that run folder itself: drop {key} (to start "
                "a new run elsewhere, give a config)"
            )
        run_config, name = load_run_config(folder), folder.name
    elif config is None:
        raise ConfigError(
            "no config given: give a config file, a bundled config name (smoke.yaml, coco_val.yaml) or a "
            "mapping, or resume=RUN_DIR"
        )
    else:
        run_config, name = _run_config_of(config)
    run_config = with_options(
        run_config,
        model=model,
        data=data,
        limit=limit,
        provider=provider,
        output=output,
        run_name=run_name,
        require_gate=require_gate,
        image_ids=image_ids,
        flags=flags,
    )
    run_config = with_baseline(
        run_config, baseline=baseline, max_baseline_drop=max_baseline_drop, flags=flags
    )
    options = RunOptions(resume=resume is not None, config_name=name)
    return evaluate_config(run_config, options, invocation=invocation)


def evaluate_config(
    config: RunConfig, options: RunOptions | None = None, *, invocation: Invocation
) -> Evaluation:
    """The whole of one run of a resolved config: its gate's baseline read before any model loads (a bad
    one fails at once), the run, and its verdict written into the run folder.

    `evaluate` resolves its arguments into a config and calls this; so does `ssd-eval run`, whose
    options (a shard, a progress bar, the folder to name when interrupted) are `options`.
    """
    options = dataclasses.replace(options or RunOptions(), command=invocation.command)
    return evaluate_run(config, options)


def started_run_folder(config: RunConfig) -> Path | None:
    """The run folder a config with a fixed output.run_name names, if a run was started in it (a requeued
    batch job continues it), else None. A shard's folder is that name too (no -shardKofN is added)."""
    if config.output.run_name is None:
        raise ConfigError(
            "only a run folder of a fixed name can be continued or started: set output.run_name"
        )
    folder = run_folder(config, RunOptions())
    return folder if (folder / CONFIG_FILE).is_file() else None


def _config_shown(config: ConfigArg | CompareConfigArg) -> object:
    if isinstance(config, RunConfig | CompareConfig):
        return config.source_file if config.source_file is not None else f"<{type(config).__name__}>"
    return config


def _run_config_of(config: ConfigArg) -> tuple[RunConfig, str]:
    """A run config and the name its default run folder starts with (the file's stem, else `run`)."""
    if isinstance(config, RunConfig):
        return config, config.source_file.stem if config.source_file is not None else "run"
    if isinstance(config, Mapping):
        return config_from_dict(plain_tree(config), base_dir=Path.cwd()), "run"
    if isinstance(config, str | os.PathLike):
        return load_config(os.fspath(config)), Path(config).stem
    raise ConfigError(
        f"config: expected a YAML file, a bundled config name or a mapping, got {type(config).__name__}"
    )


def score(
    folder: PathArg,
    *,
    scorer: str | None = None,
    data: PathArg | None = None,
    require_gate: bool = False,
    invocation: Invocation | None = None,
) -> Evaluation:
    """Score a finished run folder again from its detection log (no inference), re-apply the gate rules
    it was run with and rewrite its metrics.json, junit.xml and summary.md; the gated run.

    scorer: "pycocotools", "numpy" or "faster-coco-eval" (default: the run's own); data: a COCO root
    with annotations/ when the run's own path is not valid here; require_gate: as in `evaluate`.
    """
    invocation = invocation or Invocation.of_call(
        "ssd_eval.score", folder, scorer=scorer, data=data, require_gate=require_gate
    )
    backend = _scorer(scorer, invocation.flags)
    folder = Path(folder)
    config = _recorded_gate(folder, require_gate)
    with locked_run_folder(folder, create=False, busy=BUSY_OTHER):
        baseline = gate_baseline(config, folder)  # read before scoring: a bad one fails at once
        result = rescore_run(folder, backend=backend, data=_path(data), command=invocation.command)
        return gate_scored_run(result, config, baseline, verb="score")


def merge(
    folders: Sequence[PathArg],
    *,
    output: PathArg | None = None,
    scorer: str | None = None,
    data: PathArg | None = None,
    overwrite: bool = False,
    require_gate: bool = False,
    invocation: Invocation | None = None,
) -> Evaluation:
    """Merge the run folders of the shards of one run (`--shard K/N`, every K of one N) into one run folder,
    score the whole and apply the rules of a full run; the gated merged run.

    output: the merged run folder (default: `<first>-merged`, without -shardKofN); overwrite: replace an
    existing one. scorer, data, require_gate: as in `score`.
    """
    paths = _folders(folders, "folders")
    if not paths:
        raise OutputError("cannot merge: give the run folders of the shards")
    invocation = invocation or Invocation.of_call(
        "ssd_eval.merge",
        *paths,
        output=output,
        scorer=scorer,
        data=data,
        overwrite=overwrite,
        require_gate=require_gate,
    )
    backend = _scorer(scorer, invocation.flags)
    # The shards' recorded rules and baseline, read before merging: a bad one fails at once.
    # Any shard that asked for a required gate makes the merge's required (the shards' rules agree:
    # merge checks their identities; `required` only decides the exit code).
    require_gate = require_gate or any(load_run_config(path).gate.required for path in paths)
    baseline = gate_baseline(_recorded_gate(paths[0], require_gate), paths[0])
    target = absolute(output) if output is not None else None
    plan = plan_merge(paths, target, backend=backend, data=_path(data), overwrite=overwrite)
    with locked_run_folder(plan.target, busy=BUSY_OTHER):  # the verdict too is written under it
        result = write_merge(plan, invocation.command)
        merged = _recorded_gate(plan.target, require_gate)
        return gate_scored_run(result, merged, baseline, verb="merge")


def _recorded_gate(folder: Path, require_gate: bool) -> RunConfig:
    """The config a run folder recorded (its gate rules), with `require_gate` on top."""
    config = load_run_config(folder)
    if require_gate:
        config = dataclasses.replace(config, gate=dataclasses.replace(config.gate, required=True))
    return config


def _scorer(scorer: str | None, flags: bool) -> ScoringBackend | None:
    if scorer is None or scorer in SCORING_BACKENDS:
        return cast("ScoringBackend | None", scorer)
    known = ", ".join(SCORING_BACKENDS)
    raise ConfigError(f"{_key('scorer', flags)}: must be one of {known}, got {scorer!r}")


def _path(value: PathArg | None) -> Path | None:
    return Path(value) if value is not None else None


def _folders(folders: Sequence[PathArg], key: str) -> list[Path]:
    if isinstance(folders, str | os.PathLike):
        raise ConfigError(f"{key}: give a list of run folders, not one path ({os.fspath(folders)!r})")
    return [Path(folder) for folder in folders]


# --- compare ------------------------------------------------------------------------------------------


def compare(
    folders: Sequence[PathArg],
    *,
    reference: str | None = None,
    config: CompareConfigArg | None = None,
    output: PathArg | None = None,
    run_name: str | None = None,
    max_ap_drop: float | None = None,
    max_class_ap_drop: float | None = None,
    min_matched: float | None = None,
    max_extra: float | None = None,
    max_score_diff: float | None = None,
    max_box_diff: float | None = None,
    min_full_agreement: float | None = None,
    require_gate: bool = False,
    data: PathArg | None = None,
    invocation: Invocation | None = None,
) -> Comparison:
    """Compare finished run folders (from any machine) with a reference run and apply the gate; writes the
    comparison folder's metrics.json, junit.xml, summary.md and pictures. The gated comparison.

    reference: the reference run's folder name (default: the first folder). config: a comparison config
    (file, bundled name or mapping) whose agreement, gate and pictures sections apply (its runs are not
    run: `compare_config` runs one). output: the folder that receives the comparison folder (default: the
    config's output.dir, else ./results); run_name: its name (default compare-<time>). max_ap_drop,
    max_class_ap_drop: a run may lose at most this much AP against the reference, overall / in any
    category. min_matched, max_extra, max_score_diff, max_box_diff (pixels), min_full_agreement: the
    detection-level agreement rules against the reference (fractions of the detections scoring at least
    agreement.min_score; see CompareGateConfig). require_gate: as in `evaluate`. data: a COCO root when
    a run's own path is not valid here.
    """
    limits = {
        "max_ap_drop": max_ap_drop,
        "max_class_ap_drop": max_class_ap_drop,
        "min_matched": min_matched,
        "max_extra": max_extra,
        "max_score_diff": max_score_diff,
        "max_box_diff": max_box_diff,
        "min_full_agreement": min_full_agreement,
    }
    paths = _folders(folders, "folders")
    invocation = invocation or Invocation.of_call(
        "ssd_eval.compare",
        *paths,
        reference=reference,
        config=None if config is None else _config_shown(config),
        output=output,
        run_name=run_name,
        **limits,
        require_gate=require_gate,
        data=data,
    )
    flags = invocation.flags
    if run_name is not None:
        check_run_name(run_name, flags)
    loaded, where = _compare_config_of(config)
    settings = compare_settings(
        loaded.settings if loaded is not None else CompareSettings(),
        require_gate=require_gate,
        flags=flags,
        **limits,
    )
    baseline = load_gate_baseline(settings.gate, where=where)
    if output is not None:
        base = absolute(output)
    elif loaded is not None and loaded.output.dir is not None:
        base = loaded.output.dir
    else:
        base = Path.cwd() / "results"
    name = run_name or f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    folder = base / name
    check_apart(folder, paths, what="the comparison folder", parent_ok=True)
    # The gate reads a comparison config's gate section (and skip_unavailable, unused here: all ran); the
    # limits given change only the gate (the agreement section is the config's own, as `settings` holds it).
    gated = dataclasses.replace(loaded or CompareConfig(), gate=settings.gate)
    with locked_run_folder(folder, busy=BUSY_OTHER):
        result = compare_runs(paths, folder, settings=settings, reference=reference, data=_path(data))
        return record_compare_gate(result, gated, baseline, invocation=invocation)


def compare_config(
    config: CompareConfig, options: CompareOptions | None = None, *, invocation: Invocation
) -> Comparison:
    """Run every session of a comparison config over the same images (one run folder each, under the
    comparison folder), compare them and apply the gate. Until the reference and another run are
    finished (`options.providers` runs only some here), the result has no gate and `waiting` names the
    runs still to finish."""
    where = str(config.source_file) if config.source_file is not None else "config"
    baseline = load_gate_baseline(config.gate, where=where)  # before any model loads
    options = dataclasses.replace(options or CompareOptions(), command=invocation.command)
    gate = partial(record_compare_gate, config=config, baseline=baseline, invocation=invocation)
    outcome = run_comparison(config, options, gate=gate)
    if outcome.gated is None:
        return Comparison(outcome.folder, None, None, outcome.finished, outcome.waiting)
    return dataclasses.replace(outcome.gated, finished=outcome.finished, waiting=outcome.waiting)


def compare_settings(
    settings: CompareSettings,
    *,
    require_gate: bool = False,
    flags: bool = False,
    **limits: float | None,
) -> CompareSettings:
    """A comparison's gate with these limits (`max_ap_drop`, `min_matched`, ...: the rules of
    CompareGateConfig; None: the settings' own) and `require_gate` on top."""
    gate = settings.gate
    for key, value in limits.items():
        if key not in COMPARE_LIMITS:
            raise TypeError(f"compare_settings: unknown limit {key!r}")
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not number:
            raise ConfigError(f"{_key(key, flags)} must be a number, got {value!r}")
        given: dict[str, Any] = {key: float(value)}
        gate = dataclasses.replace(gate, **given)
    for dotted, message in check_compare_gate_values(gate):
        name = dotted.removeprefix("gate.")
        if limits.get(name) is not None:
            raise ConfigError(f"{_key(name, flags)} {message}")
    if require_gate:
        gate = dataclasses.replace(gate, required=True)
    return dataclasses.replace(settings, gate=gate)


def _compare_config_of(config: CompareConfigArg | None) -> tuple[CompareConfig | None, str]:
    """A comparison config (None: none given) and how an error about its gate names it."""
    if config is None:
        return None, "compare"
    if isinstance(config, CompareConfig):
        return config, str(config.source_file) if config.source_file is not None else "compare"
    if isinstance(config, Mapping):
        return compare_config_from_dict(plain_tree(config), base_dir=Path.cwd()), "compare"
    if isinstance(config, str | os.PathLike):
        return load_compare_config(os.fspath(config)), os.fspath(config)
    raise ConfigError(
        f"config: expected a comparison YAML file, a bundled config name or a mapping, got "
        f"{type(config).__name__}"
    )
