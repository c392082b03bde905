"""One run identity on every path: each case of issue 17 that gave a wrong number or verdict with exit 0.

Every test here failed on the main before the identity (a merge of two data copies scored AP 0.304
for a perfect detector, a re-score against a smaller annotation file turned FAIL into PASS, ...).
The numbers are hand counts or the run's own, recomputed by the unsharded path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import Det, TinyImage, make_coco, save_table_detector, write_config

import ssd_eval.engine.runner as runner_module
from ssd_eval.cli import main

IMAGES = tuple(TinyImage(10 + 3 * i, 40 + 7 * i, 60 - 2 * i) for i in range(8))
GT = {im.image_id: [Det(2, 3, 20, 15 + i % 5, (1, 18, 90)[i % 3])] for i, im in enumerate(IMAGES)}
# Perfect on every image but the last, where the box is in the wrong place (a miss and a false positive).
MISSED = IMAGES[-1].image_id
DETS = {**GT, MISSED: [Det(30, 30, 5, 5, GT[MISSED][0].category_id)]}


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _run(config: Path, name: str, *extra: str) -> int:
    return main(["--config", str(config), "--run-name", name, "--quiet", *extra])


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    root = make_coco(tmp_path / "coco", IMAGES, GT)
    model = save_table_detector(tmp_path / "model.onnx", root, DETS)
    return root, write_config(tmp_path / "run.yaml", model, root)


def test_shards_of_two_data_copies_merge_only_when_the_copies_agree(tmp_path, setup, capsys):
    root, config = setup
    assert _run(config, "whole") == 0
    whole = _metrics(tmp_path / "results" / "whole")
    # 7 of 8 categories-by-image perfect: AP = (1 + 1 + 6/7 ...) is what the unsharded run says; the
    # merge must give exactly that, whatever copy of the data each shard read.
    same = tmp_path / "same-copy"
    shutil.copytree(root, same)
    other = make_coco(tmp_path / "other-copy", IMAGES, {**GT, IMAGES[0].image_id: [Det(9, 9, 9, 9, 1)]})
    results = tmp_path / "results"
    assert _run(config, "s1", "--shard", "1/2") == 0
    for copy, name in ((same, "s2-same"), (other, "s2-other")):
        copy_config = write_config(tmp_path / f"{name}.yaml", tmp_path / "model.onnx", copy)
        assert _run(copy_config, name, "--shard", "2/2") == 0
    capsys.readouterr()
    assert (
        main(["merge", str(results / "s1"), str(results / "s2-same"), "--output", str(tmp_path / "m")]) == 0
    )
    assert _metrics(tmp_path / "m")["stats"] == whole["stats"]
    capsys.readouterr()
    code = main(["merge", str(results / "s1"), str(results / "s2-other"), "--output", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("ssd-eval: error: cannot merge: ground truth is annotations with content sha256")
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_score_against_another_annotation_file_is_refused(tmp_path, setup, capsys):
    root, config = setup
    assert _run(config, "r", "--expect-ap", "1.0", "--tolerance", "0.01") == 1  # the miss fails the gate
    run = tmp_path / "results" / "r"
    before = (run / "metrics.json").read_bytes()
    # The same annotations without the image the model missed: scoring against it would PASS.
    fewer = tmp_path / "fewer"
    shutil.copytree(root, fewer)
    data = json.loads((fewer / "annotations" / "instances_val2017.json").read_text())
    data["images"] = [im for im in data["images"] if im["id"] != MISSED]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != MISSED]
    (fewer / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["score", str(run), "--data", str(fewer), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "images is 8 images" in err[0] and "but 7 images" in err[0]
    assert "score it against the annotations it was made with" in err[0]
    assert (run / "metrics.json").read_bytes() == before
    # Another copy of the same annotations is fine, and gives the same FAIL.
    same = tmp_path / "same"
    shutil.copytree(root, same)
    assert main(["score", str(run), "--data", str(same), "--quiet"]) == 1
    assert _metrics(run)["stats"] == json.loads(before)["stats"]


def test_a_folder_without_identity_refuses_a_log_image_the_annotations_lack(tmp_path, setup, capsys):
    """An older folder recorded no ground truth; the log still names its images."""
    _, config = setup
    assert _run(config, "old") == 0
    run = tmp_path / "results" / "old"
    (run / "identity.json").unlink()
    fewer = tmp_path / "fewer"
    make_coco(fewer, IMAGES[:-1], GT)
    capsys.readouterr()
    assert main(["score", str(run), "--data", str(fewer), "--quiet"]) == 2
    assert f"its log holds 1 image(s) that {fewer}" in capsys.readouterr().err


def test_merge_verdict_does_not_depend_on_the_argument_order(tmp_path, setup, capsys):
    _, config = setup
    results = tmp_path / "results"
    assert _run(config, "g1", "--shard", "1/2", "--expect-ap", "0.5", "--tolerance", "0.6") == 0
    assert _run(config, "g2", "--shard", "2/2", "--expect-ap", "0.9", "--tolerance", "0.01") == 0
    capsys.readouterr()
    for order in (("g1", "g2"), ("g2", "g1")):
        assert main(["merge", *(str(results / n) for n in order), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "cannot merge: expected.tolerance is" in err or "cannot merge: expected.value is" in err
    # Shards of one gate merge to one verdict in either order.
    assert _run(config, "h2", "--shard", "2/2", "--expect-ap", "0.5", "--tolerance", "0.6") == 0
    verdicts = []
    for order, out in ((("g1", "h2"), "m12"), (("h2", "g1"), "m21")):
        code = main(["merge", *(str(results / n) for n in order), "--output", str(tmp_path / out), "--quiet"])
        verdicts.append(
            (code, _metrics(tmp_path / out)["gate"]["verdict"], _metrics(tmp_path / out)["stats"])
        )
    assert verdicts[0] == verdicts[1] and verdicts[0][1] == "PASS"


def test_resume_with_other_settings_is_refused_and_leaves_the_run_as_it_was(tmp_path, setup, capsys):
    _, config = setup
    assert _run(config, "done", "--expect-ap", "1.0", "--tolerance", "0.01") == 1
    run = tmp_path / "results" / "done"
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "metrics.json", "identity.json")}
    capsys.readouterr()
    assert main(["--resume", str(run), "--limit", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"ssd-eval: error: --resume {run}: dataset.limit is 2 in this command but null in the run: continue "
        "the run as it started (without the flags or config changes that differ), or start a new run"
    ]
    assert {name: (run / name).read_bytes() for name in before} == before
    assert main(["--resume", str(run), "--expect-ap", "0.5", "--quiet"]) == 2
    assert "expected.value is 0.5 in this command but 1.0 in the run" in capsys.readouterr().err
    # As it started, it is still the whole run, gated as before.
    assert main(["--resume", str(run), "--quiet"]) == 1
    assert _metrics(run)["protocol"]["num_images"] == len(IMAGES)


def test_history_keeps_the_runs_own_entry_and_timings_cover_every_part(tmp_path, setup, monkeypatch):
    _, config = setup
    real_decode = runner_module.decode_image
    calls = {"n": 0}

    def dies_at_the_sixth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(runner_module, "decode_image", dies_at_the_sixth)
    assert _run(config, "parts") == 130
    monkeypatch.setattr(runner_module, "decode_image", real_decode)
    run = tmp_path / "results" / "parts"
    assert main(["--resume", str(run), "--quiet"]) == 0
    assert main(["score", str(run), "--quiet"]) == 0
    metrics = _metrics(run)
    history = metrics["history"]
    assert [(e["verb"], e["outcome"]) for e in history] == [
        ("run", "stopped"),
        ("resume", "finished"),
        ("score", "finished"),
    ]
    # The first part inferred 6 images (the 6th decode died after its inference), the resume the other 3.
    assert [e["images_inferred"] for e in history] == [6, 3, 0]
    assert history[0]["command"][-3:] == ["--run-name", "parts", "--quiet"]
    assert metrics["provenance"] == history[0]  # the run's own entry, never replaced
    # The run's timings are its parts summed: 6 + 3 inferences, their wall times added.
    assert metrics["timings"]["infer"]["count"] == 9
    assert metrics["wall_s"] == pytest.approx(history[0]["wall_s"] + history[1]["wall_s"], abs=2e-3)


def test_compare_scores_each_run_from_its_log_and_names_an_edited_metrics_json(tmp_path, setup, capsys):
    root, config = setup
    perfect = save_table_detector(tmp_path / "perfect.onnx", root, GT)
    assert _run(write_config(tmp_path / "p.yaml", perfect, root), "ref") == 0
    assert _run(config, "missed") == 0
    run = tmp_path / "results" / "missed"
    honest_ap = _metrics(run)["stats"]["AP"]
    edited = _metrics(run)
    edited["stats"] = dict.fromkeys(edited["stats"], 1.0)
    (run / "metrics.json").write_text(json.dumps(edited))
    capsys.readouterr()
    folders = [str(tmp_path / "results" / "ref"), str(run)]
    code = main(["compare", *folders, "--max-ap-drop", "0.01", "--output", str(tmp_path), "--run-name", "c"])
    captured = capsys.readouterr()
    assert code == 1  # the log's AP is what is gated, not the edited 1.0
    comparison = json.loads((tmp_path / "c" / "metrics.json").read_text())
    (report,) = [r for r in comparison["runs"] if r["name"] == "missed"]
    assert report["stats"]["AP"] == honest_ap < 0.99
    assert any("metrics.json disagrees with its detection log" in w for w in report["warnings"])
    assert "disagrees with its detection log" in (tmp_path / "c" / "summary.md").read_text()
    assert "disagrees with its detection log" in captured.out  # the printed summary


def test_resume_continues_its_own_folder_only(tmp_path, setup, capsys):
    _, config = setup
    assert _run(config, "mine") == 0
    run = tmp_path / "results" / "mine"
    capsys.readouterr()
    assert main(["--resume", str(run), "--output", str(tmp_path / "elsewhere"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ssd-eval: error: --resume {run} continues that run folder itself: drop --output (to start a new "
        "run elsewhere, use --config)"
    )
    assert not (tmp_path / "elsewhere").exists()


def test_a_merge_is_required_when_any_shard_asked_for_it(tmp_path, setup):
    _, config = setup
    results = tmp_path / "results"
    assert _run(config, "q1", "--shard", "1/2") == 0
    assert _run(config, "q2", "--shard", "2/2", "--require-gate") == 0  # a shard defers: exit 0
    for order, out in ((("q1", "q2"), "m1"), (("q2", "q1"), "m2")):
        # No rule is set: NO VERDICT, a failure because one shard required the gate, in either order.
        assert (
            main(["merge", *(str(results / n) for n in order), "--output", str(tmp_path / out), "--quiet"])
            == 1
        )


def test_a_baseline_from_a_comparison_is_the_comparisons_images(tmp_path, setup, monkeypatch):
    root, config = setup
    monkeypatch.chdir(tmp_path)
    perfect = save_table_detector(tmp_path / "perfect.onnx", root, GT)
    assert _run(config, "l5", "--limit", "5") == 0
    assert _run(write_config(tmp_path / "p.yaml", perfect, root), "p5", "--limit", "5") == 0
    # Compared with relative folder names, from here; the baseline is made elsewhere.
    assert main(["compare", "results/p5", "results/l5", "--run-name", "c5", "--quiet"]) == 0
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    assert main(["baseline", str(tmp_path / "results" / "c5"), "--output", "b.json", "--quiet"]) == 0
    baseline = json.loads(Path("b.json").read_text())
    assert baseline["identity"]["images"]["whole_count"] == 5
    whole = ["--config", str(config), "--model", str(perfect), "--baseline", "b.json", "--require-gate"]
    assert main([*whole, "--run-name", "w8", "--quiet"]) == 1  # 8 images: not comparable
    assert main([*whole, "--limit", "5", "--run-name", "w5", "--quiet"]) == 0  # the same 5: PASS
