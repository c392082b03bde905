"""The README's CI subset gate, run as written (issue 17, item 3): through the CLI and the Python API.

The README block is taken from README.md and run line by line, with the tiny data set's config for
`coco_val.yaml`, a model file for `candidate.onnx` and N = 6 for 200. The unchanged model passes; a
model that misses one box of the six images fails (AP falls below the baseline's by more than
0.003: a hand count below); another N is not comparable, which --require-gate makes exit 1.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from helpers import Det, TinyImage, make_coco, save_table_detector, write_config

import ssd_eval
from ssd_eval.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
IMAGES = tuple(TinyImage(10 + 3 * i, 40 + 5 * i, 50) for i in range(9))
GT = {im.image_id: [Det(2, 3, 20, 15, (1, 18, 90)[i % 3])] for i, im in enumerate(IMAGES)}
# The candidate misses the only box of the first image (a person): over the first 6 images, person
# has 2 boxes, 1 found -> AP 0.5 (recall 1/2 at precision 1: 51 of 101 recall points = 0.50495);
# dog and the third category keep 1.0 -> AP (0.50495 + 2) / 3 = 0.83498, far below 1.0 - 0.003.
WORSE = {**GT, IMAGES[0].image_id: []}


def _recipe() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## A CI gate in minutes") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the README's CI gate section has no bash block"
    return [line for line in block[1].splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture
def ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    root = make_coco(tmp_path / "coco", IMAGES, GT)
    reference = save_table_detector(tmp_path / "reference.onnx", root, GT)
    worse = save_table_detector(tmp_path / "worse.onnx", root, WORSE)
    config = write_config(tmp_path / "ci.yaml", reference, root)
    monkeypatch.chdir(tmp_path)  # the recipe writes results/ and ci-200.json where it runs
    return {"config": config, "reference": reference, "worse": worse}


def _run_recipe(ci: dict[str, Path], candidate: Path, *, n: int, once_done: bool = False) -> list[int]:
    """The recipe's lines as written (its first two only once: they make the baseline)."""
    codes = []
    lines = _recipe()
    for line in lines[2:] if once_done else lines:
        line = line.replace("coco_val.yaml", str(ci["config"])).replace("candidate.onnx", str(candidate))
        words = shlex.split(line.replace(" 200", f" {n}"))
        assert words[0] == "ssd-eval"
        # Two recipe runs within one second would get the same default run folder name: name them.
        named = [] if "--run-name" in words or words[1] == "baseline" else ["--run-name", candidate.stem]
        codes.append(main([*words[1:], *named]))  # not --quiet: the verdict lines are checked
    return codes


def test_the_readme_recipe_gates_a_subset_through_the_cli(ci, capsys):
    assert len(_recipe()) == 3
    # The reference run and its baseline; then the unchanged model: PASS.
    assert _run_recipe(ci, ci["reference"], n=6) == [0, 0, 0]
    assert "gate verdict PASS" in capsys.readouterr().out
    # A candidate that misses a box: FAIL, exit 1.
    assert _run_recipe(ci, ci["worse"], n=6, once_done=True) == [1]
    err = capsys.readouterr().err
    assert "AP 0.8350 vs baseline ci-200 1.0000 (delta -0.1650): drops more than the allowed 0.0030" in err
    # Another N: not comparable, and --require-gate makes NO VERDICT a failure.
    code = main(
        [
            "--config",
            str(ci["config"]),
            "--limit",
            "5",
            "--baseline",
            "ci-200.json",
            "--require-gate",
            "--run-name",
            "other-n",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "not comparable: images is 5 images (ids sha256 " in (
        Path("results/other-n/summary.md").read_text() + err
    )


def test_an_id_list_subset_is_gated_the_same_way(ci, tmp_path):
    ids = tmp_path / "ci-ids.txt"
    ids.write_text("\n".join(str(im.image_id) for im in IMAGES[::2]) + "\n")  # 5 images, not the first 5
    config = str(ci["config"])
    assert main(["--config", config, "--image-ids", str(ids), "--run-name", "ref-ids", "--quiet"]) == 0
    assert main(["baseline", "results/ref-ids", "--output", "ids.json", "--quiet"]) == 0
    gated = [
        "--config",
        config,
        "--image-ids",
        str(ids),
        "--baseline",
        "ids.json",
        "--require-gate",
        "--quiet",
    ]
    assert main([*gated, "--run-name", "same"]) == 0
    assert main([*gated, "--model", str(ci["worse"]), "--run-name", "worse"]) == 1
    # The first 5 images are another subset of the same size: not comparable.
    first5 = ["--config", config, "--limit", "5", "--baseline", "ids.json", "--require-gate", "--quiet"]
    assert main([*first5, "--run-name", "first5"]) == 1


def test_the_recipe_through_the_python_api(ci):
    config = str(ci["config"])
    reference = ssd_eval.evaluate(config, limit=6, run_name="api-reference")
    assert reference.exit_code == 0 and reference.folder.is_dir()
    assert main(["baseline", str(reference.folder), "--output", "api-6.json", "--quiet"]) == 0
    gate = {"limit": 6, "baseline": "api-6.json", "require_gate": True}
    same = ssd_eval.evaluate(config, model=ci["reference"], run_name="same", **gate)
    assert (same.verdict, same.exit_code, bool(same)) == ("PASS", 0, True)
    worse = ssd_eval.evaluate(config, model=ci["worse"], run_name="worse", **gate)
    assert (worse.verdict, worse.exit_code) == ("FAIL", 1)
    assert worse.stats["AP"] == pytest.approx((51 / 101 + 2) / 3, abs=1e-12)
    other = ssd_eval.evaluate(config, run_name="other", **{**gate, "limit": 5})
    assert (other.verdict, other.exit_code) == ("NO VERDICT", 1)
    (check,) = [c for c in other.gate.checks if "baseline" in c.rule]
    assert check.state == "not comparable"
