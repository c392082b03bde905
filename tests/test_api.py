"""The Python API (`ssd_eval.evaluate`, `score`, `merge`, `compare`): the same verdict, files and exit
code as the command line, from a config file, a bundled name or a mapping; and the README's example of
it, run for real.

The tiny detector emits the tiny set's ground truth exactly (AP 1.0 by construction); the worse one
misses image 2's person (AP 0.9175, hand count in tests/test_gate.py).
"""

from __future__ import annotations

import dataclasses
import fcntl
import inspect
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import TINY_GT
from helpers import save_table_detector, write_compare_config, write_config

import ssd_eval
from ssd_eval.cli import main
from ssd_eval.config.compare import load_compare_config
from ssd_eval.config.run import load_config
from ssd_eval.engine import api
from ssd_eval.engine.compare import CompareOptions
from ssd_eval.engine.runner import RunOptions, run_evaluation
from ssd_eval.errors import ConfigError, OutputError, SsdEvalError

README = Path(__file__).resolve().parents[1] / "README.md"
API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"
EXPECTED = {"value": 1.0, "tolerance": 0.001}  # the perfect detector's AP
MISSED = {"value": 0.5, "tolerance": 0.01}  # AP 1.0 misses it by +0.5


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """A default output folder (./results) is the test's own."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def perfect(tmp_path, tiny_coco) -> Path:
    return save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)


@pytest.fixture
def config(tmp_path, perfect, tiny_coco) -> Path:
    """A config file whose gate the perfect detector passes; its runs go to tmp_path/results."""
    return write_config(tmp_path / "c.yaml", perfect, tiny_coco, expected=EXPECTED)


def _files_say(folder: Path) -> tuple[dict, ET.Element]:
    """metrics.json and the JUnit suite of a run or comparison folder."""
    metrics = json.loads((folder / "metrics.json").read_text())
    suite = ET.parse(folder / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    return metrics, suite


def _agrees_with_its_files(result: api.Evaluation) -> None:
    metrics, suite = _files_say(result.folder)
    assert metrics["stats"] == result.stats and len(result.stats) == 12
    assert [c["name"] for c in metrics["per_category"]] == [c.name for c in result.per_category]
    assert metrics["gate"]["verdict"] == result.verdict == result.gate.verdict
    assert metrics["gate"]["exit_code"] == result.exit_code
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props == {"verdict": result.verdict, "exit_code": str(result.exit_code)}
    assert (int(suite.get("failures", "0")) > 0) == (result.exit_code == 1)
    summary = (result.folder / "summary.md").read_text()
    assert f"**Gate: {result.verdict}**" in summary
    assert bool(result) == (result.verdict == "PASS")


def _python_blocks(path: Path) -> list[str]:
    """The code blocks of a page's "Python API" section."""
    text = path.read_text(encoding="utf-8")
    section = re.search(r"<!-- section: python-api -->(.*?)<!-- /section: python-api -->", text, re.S)
    assert section is not None, f"{path.name} has no Python API section"
    return re.findall(r"```python\n(.*?)```", section[1], re.S)


def _readme_blocks() -> list[str]:
    """docs/api.md's pytest gate and one-liners; the README shows the same gate."""
    blocks = _python_blocks(API_PAGE)
    assert len(blocks) == 2, "docs/api.md's Python API section shows a pytest gate, then score and compare"
    assert _python_blocks(README) == blocks[:1], "the README's Python API block is not docs/api.md's"
    return blocks


def test_the_readme_example_runs_as_a_ci_gate(tmp_path, config, perfect, capsys):
    """The README's pytest gate, with CONFIG and MODEL pointing at the tiny set; then its one-liners
    on the folders it names (results/cpu, results/ov, relative to the current folder)."""
    gate, one_liners = _readme_blocks()
    namespace: dict = {}
    exec(compile(gate, "README.md", "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_") and callable(value)]
    assert len(tests) == 1, "the README's example is one pytest test"
    assert {"CONFIG", "MODEL"} <= set(namespace), "the README's example reads CONFIG and MODEL"
    namespace["CONFIG"], namespace["MODEL"] = str(config), str(perfect)
    tests[0]()
    out = capsys.readouterr().out
    (folder,) = [p for p in (tmp_path / "results").iterdir() if str(p) in out]
    metrics, _ = _files_say(folder)
    assert metrics["gate"]["verdict"] == "PASS" and metrics["gate"]["required"] is True
    assert metrics["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)
    assert "'AP': 1.0" in out
    # A detector that misses the figure fails the README's test, as a CI gate must.
    namespace["CONFIG"] = str(
        write_config(tmp_path / "miss.yaml", perfect, config.parent / "coco", expected=MISSED)
    )
    with pytest.raises(AssertionError, match="FAIL: 1 of 1 rule"):
        tests[0]()
    # The one-liners, on run folders of the names they use.
    for name in ("cpu", "ov"):
        assert ssd_eval.evaluate(config, run_name=name).verdict == "PASS"
    exec(compile(one_liners, "README.md", "exec"), {"ssd_eval": ssd_eval})
    assert _files_say(tmp_path / "results" / "cpu")[0]["config"]["scoring"]["backend"] == "numpy"
    (compared,) = (tmp_path / "results").glob("compare-*")
    assert _files_say(compared)[0]["gate"]["verdict"] == "PASS"


def test_evaluate_a_config_file(tmp_path, config):
    result = ssd_eval.evaluate(config, provider="cpu", run_name="file")
    assert result.folder == tmp_path / "results" / "file"
    assert result.verdict == "PASS" and result.exit_code == 0 and result
    assert result.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert result.diagnosis is None and result.result.run_dir == str(result.folder)
    _agrees_with_its_files(result)
    # The run's history records this call, not a command line.
    metrics = json.loads((result.folder / "metrics.json").read_text())
    call = ["python", "ssd_eval.evaluate", str(config), "provider=cpu", "run_name=file"]
    assert metrics["provenance"]["command"] == call


def test_evaluate_a_mapping_config_like_a_file(tmp_path, perfect, tiny_coco):
    """A parsed YAML tree is validated as a file is; its relative paths resolve against the current folder."""
    tree = {
        "model": {"path": perfect.name},
        "dataset": {"root": tiny_coco.name},
        "output": {"dir": "here"},
        "expected": EXPECTED,
    }
    result = ssd_eval.evaluate(tree, run_name="mapping")
    assert result.folder == tmp_path / "here" / "mapping"
    assert result.verdict == "PASS"
    _agrees_with_its_files(result)
    # The same keys in a file give the same numbers.
    from_file = ssd_eval.evaluate(write_config(tmp_path / "same.yaml", perfect, tiny_coco), run_name="f")
    assert from_file.stats == result.stats
    # An unknown key is the ConfigError a file's would be, naming the dotted key; nothing is printed.
    with pytest.raises(ConfigError, match=r"model\.paht: unknown key"):
        ssd_eval.evaluate({**tree, "model": {"paht": "x.onnx"}})


def test_a_missed_figure_fails(tmp_path, perfect, tiny_coco):
    config = write_config(tmp_path / "miss.yaml", perfect, tiny_coco, expected=MISSED)
    result = ssd_eval.evaluate(config, run_name="miss")
    assert result.verdict == "FAIL" and result.exit_code == 1 and not result
    assert [c.state for c in result.gate] == ["failed"]
    _agrees_with_its_files(result)
    _, suite = _files_say(result.folder)
    (case,) = [c for c in suite.iter("testcase") if c.get("name") == "gate verdict"]
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == result.gate.verdict_line
    # The CLI gives the same verdict and exit code for the same config.
    assert main(["--config", str(config), "--run-name", "miss-cli", "--quiet"]) == 1
    assert _files_say(tmp_path / "results" / "miss-cli")[0]["gate"]["verdict"] == "FAIL"


def test_require_gate_makes_no_verdict_a_failure(tmp_path, perfect, tiny_coco):
    bare = write_config(tmp_path / "bare.yaml", perfect, tiny_coco)
    # api.evaluate itself: its own defaults (the package's function passes every keyword on).
    unrequired = api.evaluate(bare, run_name="bare")
    assert (unrequired.verdict, unrequired.exit_code) == ("NO VERDICT", 0)
    required = ssd_eval.evaluate(bare, run_name="required", require_gate=True)
    assert (required.verdict, required.exit_code) == ("NO VERDICT", 1)
    _agrees_with_its_files(required)


def test_run_evaluation_writes_the_gated_folder(tmp_path, config):
    """`run_evaluation` itself gates: a non-empty gate in metrics.json, junit.xml and summary.md."""
    run = load_config(config)
    run = dataclasses.replace(run, output=dataclasses.replace(run.output, run_name="direct"))
    result = run_evaluation(run, RunOptions())
    folder = Path(result.run_dir)
    metrics, suite = _files_say(folder)
    assert metrics["gate"] and metrics["gate"]["verdict"] == "PASS" and result.gate == metrics["gate"]
    assert suite.get("name") == "ssd-eval run direct"
    assert "**Gate: PASS**" in (folder / "summary.md").read_text()
    assert metrics["provenance"]["command"][:2] == ["python", "ssd_eval.engine.runner.run_evaluation"]
    # The options given are the run's: its default folder name and the command its history records.
    unnamed = dataclasses.replace(run, output=dataclasses.replace(run.output, run_name=None))
    command = ("ssd-eval", "run", "--config", "c.yaml")
    result = run_evaluation(unnamed, RunOptions(config_name="named", command=command))
    assert re.fullmatch(r"named-cpu-\d{8}-\d{6}", Path(result.run_dir).name)
    assert result.provenance["command"] == list(command)


def test_score_and_compare_give_the_verdicts_of_the_cli(tmp_path, config, tiny_coco):
    worse = save_table_detector(tmp_path / "worse.onnx", tiny_coco, {**TINY_GT, 2: []})
    ref = ssd_eval.evaluate(config, run_name="ref")
    other = ssd_eval.evaluate(config, model=worse, run_name="worse")
    assert (ref.verdict, other.verdict) == ("PASS", "FAIL")
    # score: the run's own rules again, as `ssd-eval score` applies them.
    for run in (ref, other):
        scored = api.score(run.folder)  # its own defaults: the run's scorer, no required gate
        assert scored.stats == run.stats and scored.verdict == run.verdict and scored.gate.required is False
        _agrees_with_its_files(scored)
        assert main(["score", str(run.folder), "--quiet"]) == scored.exit_code
        assert _files_say(run.folder)[0]["gate"]["verdict"] == scored.verdict
    # compare: AP 0.9175 against 1.0 loses 0.0825.
    folders = [ref.folder, other.folder]
    for drop, verdict, code in ((0.1, "PASS", 0), (0.01, "FAIL", 1)):
        lib = ssd_eval.compare(folders, max_ap_drop=drop, run_name=f"lib-{drop}")
        assert (lib.verdict, lib.exit_code, bool(lib)) == (verdict, code, verdict == "PASS")
        assert lib.folder == tmp_path / "results" / f"lib-{drop}"
        assert lib.result is not None and lib.result.reference == "ref"
        metrics, suite = _files_say(lib.folder)
        assert metrics["gate"]["verdict"] == verdict and suite.get("name") == f"ssd-eval compare lib-{drop}"
        assert metrics["provenance"]["command"][:2] == ["python", "ssd_eval.compare"]
        cli = [
            "compare",
            *map(str, folders),
            "--max-ap-drop",
            str(drop),
            "--run-name",
            f"cli-{drop}",
            "--quiet",
        ]
        assert main(cli) == code
        assert _files_say(tmp_path / "results" / f"cli-{drop}")[0]["gate"]["verdict"] == verdict
    # No limit given: no rule, NO VERDICT, which fails only a required gate.
    bare = ssd_eval.compare(folders, run_name="bare")
    assert (bare.verdict, bare.exit_code, bare.gate is not None and bare.gate.required) == (
        "NO VERDICT",
        0,
        False,
    )
    required = ssd_eval.compare(folders, run_name="required", require_gate=True)
    assert (required.verdict, required.exit_code) == ("NO VERDICT", 1)


def test_merge_gives_the_verdict_of_the_cli(tmp_path, config):
    for k in (1, 2):
        assert main(["--config", str(config), "--shard", f"{k}/2", "--run-name", f"s{k}", "--quiet"]) == 0
    shards = [tmp_path / "results" / f"s{k}" for k in (1, 2)]
    merged = api.merge(shards, output=tmp_path / "results" / "lib-merged")  # its own defaults
    assert merged.verdict == "PASS" and merged.folder == tmp_path / "results" / "lib-merged"
    assert merged.gate.required is False
    # Merged again into the same folder: only with overwrite.
    _refused(
        lambda: api.merge(shards, output=tmp_path / "results" / "lib-merged"),
        OutputError,
        f"run folder {tmp_path / 'results' / 'lib-merged'} already exists: pass --overwrite to replace it, "
        "or choose another --output",
    )
    _agrees_with_its_files(merged)
    cli = ["merge", *map(str, shards), "--output", str(tmp_path / "results" / "cli-merged"), "--quiet"]
    assert main(cli) == merged.exit_code
    assert _files_say(tmp_path / "results" / "cli-merged")[0]["stats"] == merged.stats


def test_bad_input_is_an_ssd_eval_error_and_prints_nothing(tmp_path, config, capsys):
    cases = [
        (lambda: ssd_eval.evaluate(config, model="ssd-13"), ConfigError, "model 'ssd-13' is neither"),
        (lambda: ssd_eval.evaluate(config, limit=0), ConfigError, "limit: must be a whole number >= 1"),
        (lambda: ssd_eval.evaluate(config, run_name="a/b"), ConfigError, "run_name "),
        (lambda: ssd_eval.evaluate(config, provider=[]), ConfigError, "provider: give a provider name"),
        (lambda: ssd_eval.evaluate(None), ConfigError, "no config given"),
        (lambda: ssd_eval.evaluate(config, resume=tmp_path), ConfigError, "resume continues a run"),
        (lambda: ssd_eval.score(tmp_path / "nothing"), OutputError, "is not a run folder"),
        (lambda: ssd_eval.score(tmp_path, scorer="fast"), ConfigError, "scorer: must be one of"),
        (lambda: ssd_eval.merge([]), OutputError, "cannot merge"),
        (lambda: ssd_eval.compare("results/a"), ConfigError, "give a list of run folders"),
        (
            lambda: ssd_eval.compare([tmp_path, tmp_path], max_ap_drop=2.0),
            ConfigError,
            r"max_ap_drop must be in \[0, 1\]",
        ),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message) as raised:
            call()
        assert isinstance(raised.value, SsdEvalError) and raised.value.exit_code == 2
    assert capsys.readouterr() == ("", "")


def test_the_package_functions_are_the_api_functions():
    """`ssd_eval.evaluate` & co. take exactly the API's options (all but `invocation`, the CLI's), with the
    same defaults, keyword-only after the first argument; `__all__` lists them."""
    assert sorted(ssd_eval.__all__) == ["compare", "evaluate", "import_detections", "merge", "score"]
    for name in ssd_eval.__all__:
        thin = inspect.signature(getattr(ssd_eval, name)).parameters
        full = dict(inspect.signature(getattr(api, name)).parameters)
        assert full.pop("invocation").default is None
        assert [(p.name, p.kind, p.default) for p in thin.values()] == [
            (p.name, p.kind, p.default) for p in full.values()
        ]
        assert [p.kind for p in thin.values()][1:] == [inspect.Parameter.KEYWORD_ONLY] * (len(thin) - 1)
        assert f"ssd_eval.engine.api.{name}" in (getattr(ssd_eval, name).__doc__ or "")


def test_import_ssd_eval_does_not_load_onnxruntime():
    code = "import ssd_eval, sys; assert 'onnxruntime' not in sys.modules, 'onnxruntime was imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# --- the API's own checks, before any run (no model is loaded) -------------------------------------

CLI = api.Invocation(("ssd-eval", "run"), "2026-01-01T00:00:00Z", flags=True)


def _refused(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        call()
    assert str(raised.value) == message


def test_evaluate_refuses_arguments_that_do_not_go_together(tmp_path, config):
    resume_with_config = (
        "continues a run with the config it was started with (its config.yaml): give no config"
    )
    _refused(
        lambda: ssd_eval.evaluate(config, resume="results/r"), ConfigError, f"resume {resume_with_config}"
    )
    _refused(
        lambda: api.evaluate(config, resume="results/r", invocation=CLI),
        ConfigError,
        f"--resume {resume_with_config}",
    )
    for given, named in [
        ({"output": "o"}, "output"),
        ({"run_name": "n"}, "run_name"),
        ({"output": "o", "run_name": "n"}, "output"),
    ]:
        _refused(
            lambda given=given: ssd_eval.evaluate(None, resume="results/r", **given),
            ConfigError,
            f"resume results/r continues that run folder itself: drop {named} (to start a new run elsewhere, "
            "give a config)",
        )
    _refused(
        lambda: api.evaluate(None, resume="results/r", run_name="n", invocation=CLI),
        ConfigError,
        "--resume results/r continues that run folder itself: drop --run-name (to start a new run elsewhere, "
        "give a config)",
    )
    _refused(
        lambda: ssd_eval.evaluate(None),
        ConfigError,
        "no config given: give a config file, a bundled config name (smoke.yaml, coco_val.yaml) or a "
        "mapping, or resume=RUN_DIR",
    )
    _refused(
        lambda: ssd_eval.evaluate(3),  # type: ignore[arg-type]
        ConfigError,
        "config: expected a YAML file, a bundled config name or a mapping, got int",
    )
    # The CLI's options are named by their flags in the checks evaluate passes them to.
    _refused(
        lambda: api.evaluate(config, limit=0, invocation=CLI),
        ConfigError,
        "--limit: must be a whole number >= 1, got 0",
    )
    _refused(
        lambda: api.evaluate(config, max_baseline_drop=0.01, invocation=CLI),
        ConfigError,
        "--max-baseline-drop needs a baseline: give --baseline FILE or set gate.baseline in the config",
    )
    assert not (tmp_path / "results").exists()


def test_a_configs_default_run_folder_starts_with_its_name(tmp_path, config):
    """`<stem>-<provider>-<time>` for a file or a bundled name; `run-...` for a mapping or a bare config."""
    loaded = load_config(config)
    assert api._run_config_of(config) == (loaded, "c")
    assert api._run_config_of(str(config)) == (loaded, "c")
    assert api._run_config_of(loaded) == (loaded, "c")
    assert api._run_config_of("smoke.yaml")[1] == "smoke"
    bare = dataclasses.replace(loaded, source_file=None)
    assert api._run_config_of(bare) == (bare, "run")
    tree = {"model": {"path": "m.onnx"}, "dataset": {"root": "coco"}}
    mapped, name = api._run_config_of(tree)
    assert (mapped.model.path, mapped.dataset.root, name) == (tmp_path / "m.onnx", tmp_path / "coco", "run")


def test_a_config_shows_in_the_provenance_as_its_file(config):
    loaded = load_config(config)
    assert api._config_shown(loaded) == config
    assert api._config_shown(dataclasses.replace(loaded, source_file=None)) == "<RunConfig>"
    assert api._config_shown(api.CompareConfig()) == "<CompareConfig>"
    tree = {"model": {}}
    assert api._config_shown(tree) is tree and api._config_shown("smoke.yaml") == "smoke.yaml"


def test_started_run_folder_is_a_fixed_name_with_its_config(tmp_path, config):
    loaded = load_config(config)
    _refused(
        lambda: api.started_run_folder(loaded),
        ConfigError,
        "only a run folder of a fixed name can be continued or started: set output.run_name",
    )
    named = dataclasses.replace(loaded, output=dataclasses.replace(loaded.output, run_name="job"))
    folder = tmp_path / "results" / "job"
    assert api.started_run_folder(named) is None
    (folder / "config.yaml").mkdir(parents=True)  # not a file: no run was started there
    assert api.started_run_folder(named) is None
    (folder / "config.yaml").rmdir()
    (folder / "config.yaml").write_text("model: {}\n")
    assert api.started_run_folder(named) == folder


def test_scorer_folders_and_paths():
    assert api._scorer(None, False) is None
    assert [api._scorer(name, True) for name in ("pycocotools", "faster-coco-eval", "numpy")] == [
        "pycocotools",
        "faster-coco-eval",
        "numpy",
    ]
    _refused(
        lambda: api._scorer("fast", False),
        ConfigError,
        "scorer: must be one of pycocotools, faster-coco-eval, numpy, got 'fast'",
    )
    _refused(
        lambda: api._scorer("Numpy", True),
        ConfigError,
        "--scorer: must be one of pycocotools, faster-coco-eval, numpy, got 'Numpy'",
    )
    assert api._folders(["a", Path("b")], "folders") == [Path("a"), Path("b")]
    for one in ("results/a", Path("results/a")):
        _refused(
            lambda one=one: api._folders(one, "runs"),  # type: ignore[arg-type]
            ConfigError,
            "runs: give a list of run folders, not one path ('results/a')",
        )
    for call in (ssd_eval.compare, ssd_eval.merge):
        _refused(
            lambda call=call: call("results/a"),  # type: ignore[arg-type]
            ConfigError,
            "folders: give a list of run folders, not one path ('results/a')",
        )
    assert api._path(None) is None and api._path("x/y") == Path("x/y")
    _refused(lambda: ssd_eval.merge([]), OutputError, "cannot merge: give the run folders of the shards")


def test_compare_settings_folds_the_limits_in():
    base = api.CompareSettings()
    settings = api.compare_settings(base, max_ap_drop=0, min_matched=None, max_box_diff=2)
    assert settings.gate.max_ap_drop == 0.0 and type(settings.gate.max_ap_drop) is float
    assert settings.gate.max_box_diff == 2.0 and type(settings.gate.max_box_diff) is float
    assert settings.gate.min_matched is None and settings.gate.required is False
    assert settings.agreement == base.agreement and settings.pictures == base.pictures
    # A limit left at None keeps the settings' own; require_gate is added on top.
    own = dataclasses.replace(base, gate=dataclasses.replace(base.gate, max_extra=0.2))
    kept = api.compare_settings(own, max_extra=None, require_gate=True)
    assert (kept.gate.max_extra, kept.gate.required) == (0.2, True)
    # A bad value of the settings' own is not the caller's to hear about.
    bad_own = dataclasses.replace(base, gate=dataclasses.replace(base.gate, max_extra=5.0))
    assert api.compare_settings(bad_own, max_ap_drop=0.1).gate.max_ap_drop == 0.1


def test_compare_settings_refuses_each_bad_limit_by_name():
    _refused(
        lambda: api.compare_settings(api.CompareSettings(), max_drop=0.1),
        TypeError,
        "compare_settings: unknown limit 'max_drop'",
    )
    for value in (True, "0.1", float("nan"), float("inf")):
        _refused(
            lambda value=value: api.compare_settings(api.CompareSettings(), max_extra=value),
            ConfigError,
            f"max_extra must be a number, got {value!r}",
        )
    _refused(
        lambda: api.compare_settings(api.CompareSettings(), flags=True, min_full_agreement=False),
        ConfigError,
        "--min-full-agreement must be a number, got False",
    )
    _refused(
        lambda: api.compare_settings(api.CompareSettings(), max_class_ap_drop=1.5),
        ConfigError,
        "max_class_ap_drop must be in [0, 1] or null, got 1.5",
    )
    _refused(
        lambda: api.compare_settings(api.CompareSettings(), flags=True, max_score_diff=2),
        ConfigError,
        "--max-score-diff must be in [0, 1] (scores are), got 2.0",
    )


def test_a_comparison_config_and_how_its_errors_name_it(tmp_path):
    assert api._compare_config_of(None) == (None, "compare")
    plain = api.CompareConfig()
    assert api._compare_config_of(plain) == (plain, "compare")
    named = dataclasses.replace(plain, source_file=tmp_path / "cmp.yaml")
    assert api._compare_config_of(named) == (named, str(tmp_path / "cmp.yaml"))
    tree = {"model": {"path": "m.onnx"}, "dataset": {"root": "coco"}, "runs": [{"name": "b"}]}
    mapped, where = api._compare_config_of(tree)
    assert (mapped and mapped.model.path, mapped and mapped.dataset.root, where) == (
        tmp_path / "m.onnx",
        tmp_path / "coco",
        "compare",
    )
    path = write_compare_config(tmp_path, tmp_path / "coco", tmp_path / "m.onnx", [{"name": "b"}])
    for given in (path, str(path)):
        loaded, where = api._compare_config_of(given)
        assert loaded is not None and loaded.source_file == path and where == str(path)
    _refused(
        lambda: api._compare_config_of(3),  # type: ignore[arg-type]
        ConfigError,
        "config: expected a comparison YAML file, a bundled config name or a mapping, got int",
    )


PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "baselines" / "ssd-10-published.json"


def test_compare_config_runs_every_session_and_gates_them(tmp_path, config, perfect, tiny_coco):
    """`compare_config`: the comparison config's own baseline (measured from a run of the same images, AP
    1.0) holds both runs; every run folder and the comparison record the caller's command."""
    base = ssd_eval.evaluate(config, run_name="base")
    assert main(["baseline", str(base.folder), "--output", str(tmp_path / "base.json"), "--quiet"]) == 0
    path = write_compare_config(
        tmp_path,
        tiny_coco,
        perfect,
        [{"name": "again", "provider": {"name": "cpu"}}],
        output={"dir": str(tmp_path / "results"), "run_name": "cmp"},
        gate={"baseline": str(tmp_path / "base.json"), "max_baseline_drop": 0.0},
    )
    asked = api.Invocation(
        ("ssd-eval", "compare", "--config", "compare.yaml"), "2026-01-02T03:04:05Z", flags=True
    )
    done = api.compare_config(load_compare_config(path), CompareOptions(config_name="x"), invocation=asked)
    folder = tmp_path / "results" / "cmp"
    assert (done.folder, done.verdict, done.exit_code) == (folder, "PASS", 0)
    assert (done.finished, done.waiting) == (("ref", "again"), ())
    assert done.gate is not None
    assert [(c.rule, c.state, c.subject) for c in done.gate] == [
        ("AP drop vs baseline base <= 0.0000", "passed", "ref"),
        ("AP drop vs baseline base <= 0.0000", "passed", "again"),
    ]
    metrics, suite = _files_say(folder)
    assert metrics["gate"]["verdict"] == "PASS" and suite.get("name") == "ssd-eval compare cmp"
    assert metrics["provenance"]["command"] == list(asked.command)
    for run in ("ref", "again"):
        history = (folder / "runs" / run / "history.jsonl").read_text().splitlines()
        assert json.loads(history[0])["command"] == list(asked.command)


def test_compare_config_before_every_run_is_finished_has_no_gate(tmp_path, perfect, tiny_coco):
    path = write_compare_config(
        tmp_path,
        tiny_coco,
        perfect,
        [{"name": "gpu", "provider": {"name": "cuda"}}],
        output={"dir": str(tmp_path / "results"), "run_name": "half"},
    )
    asked = api.Invocation(("ssd-eval", "compare"), "2026-01-02T03:04:05Z")
    done = api.compare_config(load_compare_config(path), CompareOptions(providers=("cpu",)), invocation=asked)
    assert done == api.Comparison(tmp_path / "results" / "half", None, None, ("ref",), ("gpu",))
    assert (done.verdict, done.exit_code) == ("NO VERDICT", 0)


def test_compare_config_reads_its_baseline_before_any_model_loads(tmp_path, tiny_coco):
    """A rule the baseline cannot serve is refused naming the config file (or `config` for one made in
    Python); the model named does not exist: nothing ran."""
    gate = {"baseline": str(PUBLISHED), "max_class_baseline_drop": 0.01}
    path = write_compare_config(tmp_path, tiny_coco, tmp_path / "absent.onnx", [{"name": "b"}], gate=gate)
    problem = (
        f"gate.max_class_baseline_drop: baseline {PUBLISHED} has no per-category AP (published figures); use "
        "a measured baseline (`ssd-eval baseline RUN_DIR`) or remove the rule"
    )
    asked = api.Invocation(("ssd-eval", "compare"), "2026-01-02T03:04:05Z")
    loaded = load_compare_config(path)
    _refused(lambda: api.compare_config(loaded, invocation=asked), ConfigError, f"{path}: {problem}")
    unnamed = dataclasses.replace(loaded, source_file=None)
    _refused(lambda: api.compare_config(unnamed, invocation=asked), ConfigError, f"config: {problem}")
    assert not (tmp_path / "results").exists()


def _commands(folder: Path) -> list[list[str]]:
    """The command of each entry of a run folder's history, oldest first."""
    return [json.loads(line)["command"] for line in (folder / "history.jsonl").read_text().splitlines()]


def test_every_option_of_evaluate_score_and_merge_is_applied_and_recorded(
    tmp_path, config, perfect, tiny_coco
):
    """Each call records itself with every option given, in the order of its keywords; the options reach
    the run (its config.yaml and gate say so). The data folder moves before score and merge, which find
    it by their `data`."""
    base = ssd_eval.evaluate(config, run_name="base")
    assert main(["baseline", str(base.folder), "--output", str(tmp_path / "base.json"), "--quiet"]) == 0
    for k in (1, 2):
        argv = [
            "--config",
            str(config),
            "--shard",
            f"{k}/2",
            "--run-name",
            f"s{k}",
            "--baseline",
            "base.json",
        ]
        assert main([*argv, "--quiet"]) == 0
    shards = [tmp_path / "results" / f"s{k}" for k in (1, 2)]
    (tmp_path / "ids.txt").write_text("1\n2\n5\n7\n9\n")
    full = ssd_eval.evaluate(
        config,
        model=perfect,
        data=tiny_coco,
        limit=5,
        provider="cpu",
        output="out",
        run_name="all",
        require_gate=True,
        image_ids="ids.txt",
        baseline="base.json",
        max_baseline_drop=0.01,
    )
    assert full.folder == tmp_path / "out" / "all" and full.verdict == "PASS"
    assert _commands(full.folder) == [
        [
            "python",
            "ssd_eval.evaluate",
            str(config),
            f"model={perfect}",
            f"data={tiny_coco}",
            "limit=5",
            "provider=cpu",
            "output=out",
            "run_name=all",
            "require_gate=True",
            "image_ids=ids.txt",
            "baseline=base.json",
            "max_baseline_drop=0.01",
        ]
    ]
    recorded = load_config(full.folder / "config.yaml")
    assert (recorded.dataset.limit, recorded.dataset.image_ids) == (5, tmp_path / "ids.txt")
    assert (recorded.gate.required, recorded.gate.baseline) == (True, tmp_path / "base.json")
    assert recorded.gate.max_baseline_drop == 0.01
    # Resumed: the folder's own config; the history gains the resume's call.
    resumed = ssd_eval.evaluate(None, resume=full.folder)
    assert resumed.folder == full.folder and resumed.stats == full.stats
    assert _commands(full.folder)[1] == ["python", "ssd_eval.evaluate", f"resume={full.folder}"]
    moved = tmp_path / "moved"
    tiny_coco.rename(moved)
    # Scored again with every option.
    scored = ssd_eval.score(full.folder, scorer="numpy", data=moved, require_gate=True)
    assert scored.result.config["scoring"]["backend"] == "numpy" and scored.stats == full.stats
    assert scored.result.gate["required"] is True
    assert _files_say(full.folder)[1].get("name") == "ssd-eval score all"
    assert _commands(full.folder)[2] == [
        "python",
        "ssd_eval.score",
        str(full.folder),
        "scorer=numpy",
        f"data={moved}",
        "require_gate=True",
    ]
    # Shards merged with every option, over an earlier merge; the shards' baseline holds the merge.
    assert ssd_eval.merge(shards, output="merged", data=moved).verdict == "PASS"
    merged = ssd_eval.merge(
        shards, output="merged", scorer="numpy", data=moved, overwrite=True, require_gate=True
    )
    assert merged.folder == tmp_path / "merged" and merged.result.config["scoring"]["backend"] == "numpy"
    assert merged.result.gate["required"] is True and merged.stats == base.stats
    assert ("AP drop vs baseline base <= 0.0030", "passed") in [(c.rule, c.state) for c in merged.gate]
    assert _files_say(merged.folder)[1].get("name") == "ssd-eval merge merged"
    assert _commands(merged.folder)[-1] == [
        "python",
        "ssd_eval.merge",
        str(shards[0]),
        str(shards[1]),
        "output=merged",
        "scorer=numpy",
        f"data={moved}",
        "overwrite=True",
        "require_gate=True",
    ]


def test_every_option_of_compare_is_applied_and_recorded(tmp_path, config, perfect, tiny_coco):
    """Every option given at once: each applied, and recorded in keyword order. The runs are in
    ./results/held/runs (as a comparison config's are); the data folder moves before the comparisons,
    which find it by `data`."""
    ref = ssd_eval.evaluate(config, output="results/held/runs", run_name="ref")
    again = ssd_eval.evaluate(config, output="results/held/runs", run_name="again")
    assert main(["baseline", str(ref.folder), "--output", str(tmp_path / "base.json"), "--quiet"]) == 0
    # The comparison config's own rule: its baseline, held by every run.
    cmp = write_compare_config(
        tmp_path,
        tiny_coco,
        perfect,
        [{"name": "b"}],
        output={"dir": str(tmp_path / "elsewhere")},
        gate={"baseline": str(tmp_path / "base.json"), "max_baseline_drop": 0.0},
    )
    moved = tmp_path / "moved"
    tiny_coco.rename(moved)
    folders = [ref.folder, again.folder]
    limits = {
        "max_ap_drop": 0.5,
        "max_class_ap_drop": 0.9,
        "min_matched": 0.5,
        "max_extra": 0.5,
        "max_score_diff": 0.5,
        "max_box_diff": 5.0,
        "min_full_agreement": 0.5,
    }
    done = api.compare(
        folders,
        reference="again",
        config=cmp,
        output="out",
        run_name="all",
        **limits,
        require_gate=True,
        data=moved,
    )
    assert done.folder == tmp_path / "out" / "all" and done.verdict == "PASS"
    assert done.result is not None and done.result.reference == "again"
    assert done.gate is not None and done.gate.required is True
    baseline_rule = "AP drop vs baseline base <= 0.0000"
    assert [(c.rule, c.subject) for c in done.gate if c.rule == baseline_rule] == [
        (baseline_rule, "again"),  # the reference first
        (baseline_rule, "ref"),
    ]
    assert [c.subject for c in done.gate if c.rule != baseline_rule] == ["ref"] * 7
    metrics = json.loads((done.folder / "metrics.json").read_text())
    assert metrics["provenance"]["command"] == [
        "python",
        "ssd_eval.compare",
        str(ref.folder),
        str(again.folder),
        "reference=again",
        f"config={cmp}",
        "output=out",
        "run_name=all",
        *(f"{key}={value}" for key, value in limits.items()),
        "require_gate=True",
        f"data={moved}",
    ]
    # Without `output`, the comparison goes into the config's output.dir, under the config's rules.
    elsewhere = api.compare(folders, config=cmp, run_name="there", data=moved)
    assert elsewhere.folder == tmp_path / "elsewhere" / "there" and elsewhere.gate is not None
    assert [(c.rule, c.state, c.subject) for c in elsewhere.gate] == [
        (baseline_rule, "passed", "ref"),
        (baseline_rule, "passed", "again"),
    ]
    # Neither: ./results/compare-<time>; no rule, NO VERDICT, which fails only a required gate.
    default = api.compare(folders, data=moved)
    assert default.folder.parent == tmp_path / "results"
    assert re.fullmatch(r"compare-\d{8}-\d{6}", default.folder.name)
    assert (default.verdict, default.exit_code) == ("NO VERDICT", 0)
    # A comparison folder may hold its runs (a comparison config's does) ...
    holding = api.compare(folders, output="results", run_name="held", data=moved)
    assert holding.folder == tmp_path / "results" / "held" and holding.verdict == "NO VERDICT"
    # ... but not be one of them, nor inside one; nor have a name that is no folder name.
    for output, name, relation in (
        (ref.folder.parent, "ref", "the same folder as"),
        (ref.folder, "cmp", "inside"),
    ):
        _refused(
            lambda output=output, name=name: ssd_eval.compare(folders, output=output, run_name=name),
            OutputError,
            f"the comparison folder {output / name} is {relation} the run folder {ref.folder} it is made "
            "from: write it into a folder of its own (another --output)",
        )
    _refused(
        lambda: api.compare(folders, run_name="..", invocation=CLI),
        ConfigError,
        "--run-name must be a folder name, got '..'",
    )


def _hold(folder: Path):
    """Hold a folder's lock as another ssd-eval process would (flock conflicts between two opens)."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = (folder / "run.lock").open("a")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    (folder / "run.lock").write_text("ssd-eval pid 4242\n")
    return holder


def test_score_merge_and_compare_wait_for_a_folder_in_use(tmp_path, config):
    ref = ssd_eval.evaluate(config, run_name="ref")
    again = ssd_eval.evaluate(config, run_name="again")
    busy = "is in use by ssd-eval pid 4242: wait for it to end (or stop it), then run this command again"
    for folder, call in [
        (ref.folder, lambda: ssd_eval.score(ref.folder)),
        (
            tmp_path / "cmp",
            lambda: ssd_eval.compare([ref.folder, again.folder], output=tmp_path, run_name="cmp"),
        ),
    ]:
        with _hold(folder):
            _refused(call, OutputError, f"run folder {folder} {busy}")
    for k in (1, 2):
        assert main(["--config", str(config), "--shard", f"{k}/2", "--run-name", f"s{k}", "--quiet"]) == 0
    shards = [tmp_path / "results" / f"s{k}" for k in (1, 2)]
    with _hold(tmp_path / "merged"):
        _refused(
            lambda: ssd_eval.merge(shards, output=tmp_path / "merged", overwrite=True),
            OutputError,
            f"run folder {tmp_path / 'merged'} {busy}",
        )


def test_a_run_folder_reached_through_a_link_is_scored_and_resumed(tmp_path, config):
    """score and resume work on the folder named, links and all (only a folder a command creates must
    be its own)."""
    run = ssd_eval.evaluate(config, run_name="real")
    link = tmp_path / "link"
    link.symlink_to(run.folder)
    assert ssd_eval.score(link).stats == run.stats
    assert ssd_eval.evaluate(None, resume=link).stats == run.stats
    assert [
        verb
        for verb in (json.loads(x)["verb"] for x in (run.folder / "history.jsonl").read_text().splitlines())
    ] == [
        "run",
        "score",
        "resume",
    ]


def test_a_configs_run_folder_is_named_after_its_file(tmp_path, perfect, tiny_coco):
    result = ssd_eval.evaluate(write_config(tmp_path / "mine.yaml", perfect, tiny_coco))
    assert result.folder.parent == tmp_path / "results"
    assert re.fullmatch(r"mine-cpu-\d{8}-\d{6}", result.folder.name)


def test_compare_config_names_a_skipped_run_among_the_waiting(tmp_path, perfect, tiny_coco):
    """skip_unavailable: the CUDA run cannot load here; the comparison is gated with the reference alone
    and names the CUDA run as still to finish."""
    path = write_compare_config(
        tmp_path,
        tiny_coco,
        perfect,
        [{"name": "gpu", "provider": {"name": "cuda"}}],
        output={"dir": str(tmp_path / "results"), "run_name": "skip"},
        skip_unavailable=True,
    )
    asked = api.Invocation(("ssd-eval", "compare"), "2026-01-02T03:04:05Z")
    done = api.compare_config(load_compare_config(path), invocation=asked)
    assert (done.finished, done.waiting) == (("ref",), ("gpu",))
    assert done.gate is not None and done.folder == tmp_path / "results" / "skip"


def test_score_holds_a_run_to_the_baseline_its_folder_keeps(tmp_path, config):
    base = ssd_eval.evaluate(config, run_name="base")
    assert main(["baseline", str(base.folder), "--output", str(tmp_path / "base.json"), "--quiet"]) == 0
    run = ssd_eval.evaluate(config, run_name="held", baseline=tmp_path / "base.json", max_baseline_drop=0.0)
    (tmp_path / "base.json").unlink()  # the run folder keeps its own copy of the baseline
    scored = api.score(run.folder)
    assert ("AP drop vs baseline base <= 0.0000", "passed") in [(c.rule, c.state) for c in scored.gate]


def test_evaluate_reads_the_images_from_the_data_given(tmp_path, perfect, tiny_coco):
    """data= replaces the config's dataset.root (here a folder that is not there)."""
    mapping = {"model": {"path": str(perfect)}, "dataset": {"root": str(tmp_path / "gone")}}
    result = ssd_eval.evaluate(mapping, data=tiny_coco, run_name="moved")
    assert result.stats["AP"] == pytest.approx(1.0, abs=1e-12)
