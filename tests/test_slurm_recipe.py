"""The documented Slurm recipe as written, on a real single-node Slurm: the merge job's exit is the verdict.

The three code blocks of docs/operations.md "Shards and merge" (shard.sbatch, merge.sbatch, submit) are
taken from the page, so the test breaks when the docs drift. They run on a generated COCO set (16
images, 4 shards of 4) with a table detector: a perfect one against expected AP 1.0 (the merge must
pass, exit 0) and one that misses half the objects (must fail, exit 1). In each, array task 1 is
requeued while it is in the middle of its shard: a `sitecustomize` hook on the jobs' PYTHONPATH makes
reading its third image wait while a gate file exists, so the task blocks there after writing its
first two images, until `scontrol requeue` kills it; the gate is then removed and the requeued task
must resume its own folder (a fresh start would be refused, failing the task and cancelling the
merge). (A named pipe in place of the image would no longer block: ssd_eval refuses non-regular files.)
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from helpers import Det, TinyImage, make_coco, save_table_detector, write_config
from slurm_cluster import SlurmCluster, SlurmUnavailable, single_node_slurm

REPO = Path(__file__).resolve().parents[1]
IMAGES = tuple(TinyImage(100 + i, 40 + 3 * i, 30 + 2 * i) for i in range(16))
GT = {im.image_id: [Det(3, 4, 20 + i % 5, 14, (1, 18, 90)[i % 3])] for i, im in enumerate(IMAGES)}
# Shard 1 of 4 takes every 4th image by id: 100, 104, 108, 112. It blocks on its third.
BLOCKING_IMAGE = 108


def readme_recipe() -> dict[str, str]:
    """The Slurm blocks of docs/operations.md "Shards and merge", by the name in their first comment line."""
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text[text.index("## Shards and merge") :]
    end = section.find("\n## ", 1)
    section = section if end < 0 else section[:end]
    blocks = {}
    for body in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        first_comment = next(line for line in body.splitlines() if line.startswith("# "))
        blocks[first_comment[2:].split(":")[0]] = body
    missing = {"shard.sbatch", "merge.sbatch", "submit"} - set(blocks)
    assert not missing, f"docs/operations.md 'Shards and merge' lost its Slurm block(s) {sorted(missing)}"
    return blocks


def test_the_recipe_is_in_the_readme():
    blocks = readme_recipe()
    assert "--resume-or-start" in blocks["shard.sbatch"]
    assert "--require-gate" in blocks["merge.sbatch"]
    assert "--dependency=afterok:" in blocks["submit"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        with single_node_slurm(tmp_path_factory.mktemp("slurm")) as running:
            yield running
    except SlurmUnavailable as exc:
        pytest.skip(f"no Slurm: {exc}")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def _wait_for(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# Imported by every Python the jobs start (it is first on their PYTHONPATH): opening the image named by
# $SSD_EVAL_TEST_BLOCK waits while the file $SSD_EVAL_TEST_GATE exists.
GATE_HOOK = """
import os, time
import PIL.Image

_open = PIL.Image.open


def _name(fp):
    if isinstance(fp, int):
        return os.readlink(f"/proc/self/fd/{fp}")
    name = getattr(fp, "name", fp)
    return _name(name) if isinstance(name, int) else str(name)


def _gated_open(fp, *args, **kwargs):
    if _name(fp).endswith(os.environ["SSD_EVAL_TEST_BLOCK"]):
        while os.path.exists(os.environ["SSD_EVAL_TEST_GATE"]):
            time.sleep(0.05)
    return _open(fp, *args, **kwargs)


PIL.Image.open = _gated_open
"""


def _gate(work: Path, image: Path) -> tuple[Path, dict[str, str]]:
    """The hook's folder and gate file (created: closed) and the environment that arms it."""
    hook = work / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(GATE_HOOK)
    gate = work / "gate-closed"
    gate.touch()
    return gate, {"SSD_EVAL_TEST_BLOCK": image.name, "SSD_EVAL_TEST_GATE": str(gate), "PYTHONPATH": str(hook)}


def _submit(
    cluster: SlurmCluster, work: Path, config: Path, runs: Path, hook_env: dict[str, str]
) -> tuple[str, str]:
    """Write the documented scripts into `work` and run its submit block there: (shards job, merge job)."""
    blocks = readme_recipe()
    for name in ("shard.sbatch", "merge.sbatch"):
        (work / name).write_text(blocks[name])
    (work / "submit.sh").write_text("set -eu\n" + blocks["submit"])
    env = {
        **cluster.env,
        "CONFIG": str(config),
        "RUNS": str(runs),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{cluster.env.get('PATH', '')}",
        **hook_env,
        "PYTHONPATH": f"{hook_env['PYTHONPATH']}{os.pathsep}{REPO}",
    }
    done = SlurmCluster(cluster.root, env).command("bash", "submit.sh", cwd=work)
    merge = done.strip().splitlines()[-1]
    dependency = cluster.job(merge)["Dependency"]
    shards = re.fullmatch(r"afterok:(\d+)_\*.*", dependency)
    assert shards is not None, f"merge job {merge} depends on {dependency!r}"
    return shards[1], merge


@pytest.mark.parametrize("case", ["pass", "fail"])
def test_slurm_recipe_merge_exit_code_is_the_verdict(cluster, tmp_path, case):
    root = make_coco(tmp_path / "coco", IMAGES, GT)
    dets = GT if case == "pass" else {i: d for i, d in GT.items() if i % 2 == 0}  # half the objects missed
    model = save_table_detector(tmp_path / "model.onnx", root, dets)
    expected = {"metric": "AP", "value": 1.0, "tolerance": 0.003}
    config = write_config(tmp_path / "eval.yaml", model, root, expected=expected)
    gate, hook_env = _gate(tmp_path, root / "val2017" / f"{BLOCKING_IMAGE:012d}.png")

    runs = tmp_path / "runs"
    shards, merge = _submit(cluster, tmp_path, config, runs, hook_env)
    task_log = runs / shards / "shard1" / "detections.jsonl"
    _wait_for(lambda: len(_lines(task_log)) == 2, "array task 1 to write its first two images")
    task = cluster.job(f"{shards}_1")
    assert task["JobState"] == "RUNNING" and not (task_log.parent / "metrics.json").exists()

    cluster.command("scontrol", "requeue", f"{shards}_1")
    _wait_for(lambda: cluster.job(f"{shards}_1")["JobState"] == "PENDING", "the task to be requeued")
    first_attempt = _lines(task_log)  # its process is gone: what it left
    assert len(first_attempt) == 2
    gate.unlink()
    # Slurm holds a requeued job back for ~2 minutes (its BeginTime); start it now instead.
    cluster.command("scontrol", "update", f"jobid={task['JobId']}", "StartTime=now")

    record = cluster.wait_done(merge, timeout=150)
    outputs = "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("slurm-*.out")))
    task = cluster.job(f"{shards}_1")
    assert task["Restarts"] == "1" and task["JobState"] == "COMPLETED", outputs
    # The requeued task resumed its own folder: the first attempt's lines kept, no image twice.
    resumed = _lines(task_log)
    assert resumed[:2] == first_attempt and len(resumed) == 4, outputs

    metrics = json.loads((runs / shards / "merged" / "metrics.json").read_text())
    assert metrics["protocol"]["num_images"] == 16 and metrics["protocol"]["shard"] is None
    if case == "pass":
        assert metrics["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)
        assert metrics["gate"]["verdict"] == "PASS"
        assert (record["JobState"], record["ExitCode"]) == ("COMPLETED", "0:0"), outputs
    else:
        # Hand count: the even ids are found. person 3 of 6, dog 2 of 5, toothbrush 3 of 5, each at
        # precision 1: 51, 41 and 61 of COCO's 101 recall points -> AP (51 + 41 + 61) / 303.
        assert metrics["stats"]["AP"] == pytest.approx(153 / 303, abs=1e-12)
        assert metrics["gate"]["verdict"] == "FAIL"
        assert (record["JobState"], record["ExitCode"]) == ("FAILED", "1:0"), outputs


def test_where_slurm_cannot_start_the_reason_is_given(monkeypatch):
    import slurm_cluster

    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 1000)
    assert slurm_cluster.unavailable_reason() == (
        "slurmd must run as root (it starts jobs as their user); run the test as root"
    )
    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 0)
    monkeypatch.setattr(slurm_cluster.shutil, "which", lambda name: None)
    reason = slurm_cluster.unavailable_reason()
    assert reason is not None and reason.endswith("missing): apt-get install slurm-wlm munge")
    assert "sbatch, scontrol, sinfo" in reason
