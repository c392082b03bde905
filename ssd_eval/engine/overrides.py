"""Options given to the Python API (or the command line) applied to a run config: each checked and
named as the caller gave it (`run_name=` from Python, `--run-name` from the CLI), then folded into a
new frozen config. `ssd_eval.engine.api` applies them; the CLI uses `with_model` for a comparison.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

from ssd_eval.config.run import (
    DEFAULT_TOLERANCE,
    ExpectedConfig,
    ProviderConfig,
    RunConfig,
    run_name_problem,
)
from ssd_eval.config.schema import absolute
from ssd_eval.errors import ConfigError

PathArg: TypeAlias = str | os.PathLike[str]  # a path, as a string or a Path

_TWINS = ("twin-1200", "twin-600")


def option_key(name: str, flags: bool) -> str:
    """An option as an error names it: its keyword (`run_name`), or its flag for the CLI (`--run-name`)."""
    return f"--{name.replace('_', '-')}" if flags else name


_key = option_key


def plain_tree(tree: object) -> object:
    """A mapping given by the caller as the plain dicts and lists a YAML file parses to."""
    if isinstance(tree, Mapping):
        return {key: plain_tree(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [plain_tree(value) for value in tree]
    if isinstance(tree, os.PathLike):
        return os.fspath(tree)
    return tree


# --- options over a run config (the keywords of `evaluate`, the flags of `ssd-eval run`) ------------------


def with_options(
    config: RunConfig,
    *,
    model: PathArg | None = None,
    data: PathArg | None = None,
    limit: int | None = None,
    provider: str | Sequence[str] | None = None,
    output: PathArg | None = None,
    run_name: str | None = None,
    require_gate: bool = False,
    image_ids: PathArg | None = None,
    flags: bool = False,
) -> RunConfig:
    """`evaluate`'s options over a config (None: the config's own); relative paths resolve against the
    current folder. `flags`: an error names an option by its command-line flag."""
    replace = dataclasses.replace
    if model is not None:
        config = with_model(config, model, flags=flags)
    if data is not None:
        config = replace(config, dataset=replace(config.dataset, root=absolute(data), source=None))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"{_key('limit', flags)}: must be a whole number >= 1, got {limit!r}")
        config = replace(config, dataset=replace(config.dataset, limit=limit))
    if image_ids is not None and not isinstance(image_ids, str | os.PathLike):
        raise ConfigError(
            f"{_key('image_ids', flags)}: give the path of a file of image ids (one per line, or a JSON "
            f"list), got {type(image_ids).__name__}"
        )
    if image_ids is not None:
        config = replace(config, dataset=replace(config.dataset, image_ids=absolute(image_ids)))
    if provider is not None:
        names = [provider] if isinstance(provider, str) else list(provider)
        if not names or not all(isinstance(name, str) and name for name in names):
            raise ConfigError(
                f"{_key('provider', flags)}: give a provider name (cpu, cuda, openvino, ...) or a list of "
                f"them, got {provider!r}"
            )
        config = replace(config, providers=tuple(ProviderConfig(name=name) for name in names))
    if output is not None:
        config = replace(config, output=replace(config.output, dir=absolute(output)))
    if run_name is not None:
        config = with_run_name(config, run_name, flags=flags)
    if require_gate:
        config = replace(config, gate=replace(config.gate, required=True))
    return config


def _is_model_name(text: str) -> bool:
    """`ssd-12` names a known model unless a file of that name exists here."""
    from ssd_eval.assets.sources import MODELS

    return not Path(text).exists() and (text in MODELS or re.fullmatch(r"twin-\d+", text) is not None)


def with_model(config: RunConfig, model: PathArg, *, flags: bool = False) -> RunConfig:
    """A known model name, or an ONNX file; a bare word that is neither lists the known names."""
    replace = dataclasses.replace
    text = os.fspath(model)
    if _is_model_name(text):
        return replace(config, model=replace(config.model, path=None, source=text))
    path = Path(text)
    if not path.exists() and path.suffix.lower() != ".onnx" and len(path.parts) == 1:
        from ssd_eval.assets.sources import MODELS

        close = difflib.get_close_matches(text, [*MODELS, *_TWINS], n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"{_key('model', flags)} {text!r} is neither a file nor a known model name: {hint}known models: "
            f"{', '.join(MODELS)}, twin-<input size> (e.g. twin-1200); a file is given by its path"
        )
    return replace(config, model=replace(config.model, path=absolute(path), source=None))


def with_run_name(config: RunConfig, name: str, *, flags: bool = False) -> RunConfig:
    """One folder name, checked as the config's output.run_name is."""
    check_run_name(name, flags)
    return dataclasses.replace(config, output=dataclasses.replace(config.output, run_name=name))


def check_run_name(name: str, flags: bool) -> None:
    problem = run_name_problem(name) if isinstance(name, str) else f"must be a folder name, got {name!r}"
    if problem is not None:
        raise ConfigError(f"{_key('run_name', flags)} {problem}")


def with_expected(
    config: RunConfig, *, expect_ap: float | None = None, tolerance: float | None = None, flags: bool = False
) -> RunConfig:
    """A reference figure for the model being run (`--expect-ap`) and/or another tolerance over the
    config's `expected`: what is left out comes from it."""
    if expect_ap is None and tolerance is None:
        return config
    if expect_ap is not None and not (math.isfinite(expect_ap) and 0.0 <= expect_ap <= 1.0):
        raise ConfigError(
            f"{_key('expect_ap', flags)}: must be a COCO stat in [0, 1] (0.195, not 19.5), got {expect_ap}"
        )
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0.0):
        raise ConfigError(f"{_key('tolerance', flags)}: must be a number >= 0, got {tolerance}")
    expected = config.expected
    if expect_ap is None:
        if expected is None:
            raise ConfigError(
                f"{_key('tolerance', flags)} needs a reference: give {_key('expect_ap', flags)} or set "
                "`expected` in the config"
            )
        kept = expected.tolerance if tolerance is None else tolerance
        return dataclasses.replace(config, expected=dataclasses.replace(expected, tolerance=kept))
    base = expected if expected is not None else ExpectedConfig(value=expect_ap)
    # A figure given for the model being run: no model or selection pin.
    figure = dataclasses.replace(
        base,
        value=expect_ap,
        tolerance=base.tolerance if tolerance is None else tolerance,
        model_sha256=None,
        selection=None,
    )
    return dataclasses.replace(config, expected=figure)


def with_baseline(
    config: RunConfig,
    *,
    baseline: PathArg | None = None,
    max_baseline_drop: float | None = None,
    flags: bool = False,
) -> RunConfig:
    """Gate against another baseline file (`--baseline`) and/or with another allowed drop: the CI
    subset gate. A baseline without a drop set anywhere is held with the default tolerance."""
    if baseline is None and max_baseline_drop is None:
        return config
    number = isinstance(max_baseline_drop, int | float) and not isinstance(max_baseline_drop, bool)
    if max_baseline_drop is not None and not (
        number and math.isfinite(max_baseline_drop) and 0 <= max_baseline_drop <= 1
    ):
        raise ConfigError(
            f"{_key('max_baseline_drop', flags)}: must be a number in [0, 1], got {max_baseline_drop!r}"
        )
    if baseline is not None and not isinstance(baseline, str | os.PathLike):
        raise ConfigError(f"{_key('baseline', flags)}: give a baseline file's path, got {baseline!r}")
    gate = config.gate
    if baseline is not None:
        gate = dataclasses.replace(gate, baseline=absolute(baseline))
    elif gate.baseline is None:
        raise ConfigError(
            f"{_key('max_baseline_drop', flags)} needs a baseline: give {_key('baseline', flags)} FILE or "
            "set gate.baseline in the config"
        )
    drop = max_baseline_drop if max_baseline_drop is not None else gate.max_baseline_drop
    gate = dataclasses.replace(gate, max_baseline_drop=DEFAULT_TOLERANCE if drop is None else drop)
    return dataclasses.replace(config, gate=gate)


# --- score and merge ----------------------------------------------------------------------------------
