"""The run summary printed at the end of a run: every stat, and `n/a` for one COCOeval could not compute."""

from __future__ import annotations

from conftest import TINY_GT
from helpers import save_table_detector, write_config

from ssd_eval.cli import main
from ssd_eval.coco_stats import is_undefined
from ssd_eval.reports.report import stat_text


def test_is_undefined():
    assert is_undefined(-1.0) and is_undefined(-0.5) and is_undefined(None)
    assert not is_undefined(0.0) and not is_undefined(1.0)


def test_stat_text():
    assert (stat_text(-1.0), stat_text(None), stat_text(0.0), stat_text(0.19578)) == (
        "n/a",
        "n/a",
        "0.0000",
        "0.1958",
    )
    assert stat_text(0.5, ".3f") == "0.500"


def test_summary_shows_an_undefined_stat_as_n_a(tmp_path, tiny_coco, capsys):
    # A perfect detector on the tiny set, whose largest box is 60x45 (under 96x96): no large object,
    # so pycocotools reports APl and ARl as -1; every other stat is 1.
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    config = write_config(tmp_path / "c.yaml", model, tiny_coco)
    capsys.readouterr()
    assert main(["--config", str(config), "--run-name", "r"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("  AP      1.0000   AP @[IoU=0.50:0.95 | area=all | maxDets=100]")
    assert lines[start : start + 12] == [
        "  AP      1.0000   AP @[IoU=0.50:0.95 | area=all | maxDets=100]",
        "  AP50    1.0000   AP @[IoU=0.50 | area=all | maxDets=100]",
        "  AP75    1.0000   AP @[IoU=0.75 | area=all | maxDets=100]",
        "  APs     1.0000   AP @[IoU=0.50:0.95 | area=small | maxDets=100]",
        "  APm     1.0000   AP @[IoU=0.50:0.95 | area=medium | maxDets=100]",
        "  APl        n/a   AP @[IoU=0.50:0.95 | area=large | maxDets=100]",
        "  AR1     1.0000   AR @[IoU=0.50:0.95 | area=all | maxDets=1]",
        "  AR10    1.0000   AR @[IoU=0.50:0.95 | area=all | maxDets=10]",
        "  AR100   1.0000   AR @[IoU=0.50:0.95 | area=all | maxDets=100]",
        "  ARs     1.0000   AR @[IoU=0.50:0.95 | area=small | maxDets=100]",
        "  ARm     1.0000   AR @[IoU=0.50:0.95 | area=medium | maxDets=100]",
        "  ARl        n/a   AR @[IoU=0.50:0.95 | area=large | maxDets=100]",
    ]
    assert not any("-1.0000" in line for line in lines)
