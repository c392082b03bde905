"""Hostile input (issue 18, input side): files and values made to escape, exhaust or confuse the tool.

Each row breaks one thing in a working setup (the tiny COCO set, a perfect table detector, a config:
AP 1.0 without the fault) and runs the CLI in-process on the paths that read that input (`run`,
`check`, `run --resume`, `score`). It checks: exit code 2, one stderr line naming the fault, no
traceback, and that nothing was read that should not be: the refusal comes before scoring, so no new
run folder (and no detection of the offending image) exists. Every file present before is still
there, unchanged: a refused resume leaves the run folder's detections.jsonl as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest
import yaml
from conftest import TINY_GT
from helpers import save_table_detector, write_config
from test_faults_input import Setup as InputSetup

from ssd_eval.cli import main
from ssd_eval.engine.run_folder import load_run_config


@dataclass(frozen=True)
class Setup(InputSetup):
    """test_faults_input's setup, with the folders and files these faults are planted in."""

    @property
    def images(self) -> Path:
        return self.coco / "val2017"

    @property
    def done(self) -> Path:
        """A finished run of the unbroken setup, made before the fault."""
        return self.tmp / "results" / "done"

    def annotations(self) -> dict:
        return json.loads(self.annotation_file.read_text())

    def write_annotations(self, data: dict) -> None:
        self.annotation_file.write_text(json.dumps(data))


@pytest.fixture
def setup(tmp_path: Path, tiny_coco: Path, capsys) -> Setup:
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    config = write_config(tmp_path / "c.yaml", model, tiny_coco)
    made = Setup(tmp_path, tiny_coco, model, config)
    assert main(["--config", str(config), "--run-name", "done", "--quiet"]) == 0
    metrics = json.loads((made.done / "metrics.json").read_text())
    assert metrics["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)
    capsys.readouterr()
    return made


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: a blocking open or read is interrupted after `seconds`."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "run.lock"
    }


def _kept(before: dict[str, bytes], after: dict[str, bytes]) -> None:
    """Every file of `before` is in `after` unchanged; a history may have gained lines (a stopped
    resume records itself), the earlier ones kept."""
    for name, data in before.items():
        if name.endswith("history.jsonl"):
            assert after.get(name, b"").startswith(data), name
        else:
            assert after.get(name) == data, name


COMMANDS: dict[str, Callable[[Setup], list[str]]] = {
    "run": lambda s: ["--config", str(s.config), "--run-name", "new"],
    "check": lambda s: ["check", "--config", str(s.config)],
    "resume": lambda s: ["--resume", str(s.done)],
    "score": lambda s: ["score", str(s.done)],
}


def _refused(setup: Setup, command: list[str], capsys, *, may_start: str = "") -> str:
    """Run `command` on the broken setup; assert exit 2, one line, no traceback, nothing changed or made
    (except under the folder `may_start`: a run that stops at a bad image keeps what it did before)."""
    before = _snapshot(setup.tmp)
    capsys.readouterr()
    with deadline(60):
        code = main([*command, "--quiet"])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, lines
    assert lines[0].startswith("ssd-eval: error: ") and "Traceback" not in captured.err
    after = _snapshot(setup.tmp)
    _kept(before, after)
    new = {name for name in set(after) - set(before) if not (may_start and name.startswith(may_start))}
    assert not new, new  # nothing written: no run folder, no detections of anything
    return lines[0]


# --- file_name: never a file outside the images folder -------------------------------------------


def _move_image_outside(setup: Setup) -> Path:
    """Image 1's file moved out of the images folder; it is still a valid image of the right size, so a
    run that followed the file name would score it (AP 1.0) and log its detections."""
    outside = setup.tmp / "outside"
    outside.mkdir()
    target = outside / "private.png"
    (setup.images / "000000000001.png").rename(target)
    return target


def _set_file_name(setup: Setup, image_id: int, name: str) -> None:
    data = setup.annotations()
    for image in data["images"]:
        if image["id"] == image_id:
            image["file_name"] = name
    setup.write_annotations(data)


@dataclass(frozen=True)
class NameFault:
    name: str
    file_name: Callable[[Setup], str]
    expect: str


NAME_FAULTS = [
    NameFault(
        "dot-dot out of the folder",
        lambda s: "../../outside/private.png",
        "the file name goes up out of the images folder (..)",
    ),
    NameFault("absolute path", lambda s: str(_move_image_outside(s)), "the file name is an absolute path"),
    NameFault("/etc/passwd", lambda s: "/etc/passwd", "the file name is an absolute path"),
    NameFault(
        "dot-dot inside a path", lambda s: "sub/../../x.png", "the file name goes up out of the images"
    ),
    NameFault("backslash", lambda s: "..\\outside\\private.png", "the file name holds a backslash"),
    NameFault("drive", lambda s: "C:private.png", "the file name names a drive"),
    NameFault("NUL", lambda s: "000000000001.png\0.jpg", "the file name holds a NUL character"),
    NameFault("the folder itself", lambda s: "./", "the file name names the images folder itself"),
]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("fault", NAME_FAULTS, ids=[f.name for f in NAME_FAULTS])
def test_a_file_name_outside_the_images_folder_is_refused_before_any_image(
    setup: Setup, fault: NameFault, command: str, capsys
) -> None:
    if fault.name == "dot-dot out of the folder":
        _move_image_outside(setup)
    name = fault.file_name(setup)
    _set_file_name(setup, 1, name)
    line = _refused(setup, COMMANDS[command](setup), capsys)
    # The value is shown whole up to 60 characters, shortened beyond.
    assert f"annotation file {setup.annotation_file}: images[0].file_name = {repr(name)[:50]}" in line
    assert f": image 1: {fault.expect}" in line


def test_a_symlinked_images_folder_and_symlinked_files_keep_working(setup: Setup, capsys) -> None:
    """Data sets are often symlink farms: the folder itself, or each file, may be a link elsewhere.
    Links inside the images folder are followed (whoever made the folder chose them; an annotation
    file cannot make one)."""
    store = setup.tmp / "store"
    setup.images.rename(store)
    farm = setup.coco / "val2017"
    farm.mkdir()
    for path in sorted(store.iterdir()):
        (farm / path.name).symlink_to(path)
    linked_root = setup.tmp / "linked"
    linked_root.symlink_to(setup.coco, target_is_directory=True)
    config = write_config(setup.tmp / "linked.yaml", setup.model, linked_root)
    assert main(["--config", str(config), "--run-name", "farm", "--quiet"]) == 0, capsys.readouterr().err
    metrics = json.loads((setup.tmp / "results" / "farm" / "metrics.json").read_text())
    assert metrics["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("command", ["run", "check", "score"])
@pytest.mark.parametrize("second", ["000000000001.png", "./000000000001.png", "a/../000000000001.png"])
def test_two_images_naming_one_file_are_refused(setup: Setup, second: str, command: str, capsys) -> None:
    """One set of pixels scored against two ground truths gave AP 0.60 without a word."""
    _set_file_name(setup, 2, second)
    line = _refused(setup, COMMANDS[command](setup), capsys)
    if ".." in second:
        assert "images[1].file_name" in line and "goes up out of the images folder" in line
    else:
        assert f"images[1].file_name = {second!r}: image 2 names the same file as image 1 (images[0])" in line


# --- ids: exact in float64 -----------------------------------------------------------------------


def _renumber(setup: Setup, old: int, new: int) -> None:
    data = setup.annotations()
    for image in data["images"]:
        if image["id"] == old:
            image["id"] = new
    for ann in data["annotations"]:
        if ann["image_id"] == old:
            ann["image_id"] = new
    setup.write_annotations(data)


@pytest.mark.parametrize("command", ["run", "check", "score"])
def test_image_ids_of_2_53_and_above_are_refused(setup: Setup, command: str, capsys) -> None:
    """2**53 and 2**53 + 1 are one float64: AP 0.5774 for a perfect detector, or a crash."""
    _renumber(setup, 1, 2**53)
    _renumber(setup, 2, 2**53 + 1)
    line = _refused(setup, COMMANDS[command](setup), capsys)
    assert (
        "images[0].id = 9007199254740992: an image id must be an integer with |id| <= 9007199254740991"
        in line
    )
    # Both images, and the three annotations on them that now name no valid image.
    assert "5 offences in all" in line


def test_image_ids_just_below_2_53_and_coco_crowd_annotation_ids_score_ap_1(setup: Setup, capsys) -> None:
    """The bound is not tighter than it must be: ids up to 2**53 - 1, and annotation ids like COCO's
    crowd ones (900100087038), are exact and score a perfect detector at 1.0."""
    _renumber(setup, 1, 2**53 - 1)
    _renumber(setup, 2, 2**53 - 2)
    data = setup.annotations()
    for index, ann in enumerate(data["annotations"]):
        ann["id"] = 900100087038 + index
    setup.write_annotations(data)
    for scorer in ("pycocotools", "numpy", "faster-coco-eval"):
        name = f"big-{scorer}"
        config = write_config(
            setup.tmp / f"{name}.yaml", setup.model, setup.coco, scoring={"backend": scorer}
        )
        command = ["--config", str(config), "--run-name", name, "--quiet"]
        assert main(command) == 0, capsys.readouterr().err
        metrics = json.loads((setup.tmp / "results" / name / "metrics.json").read_text())
        assert metrics["stats"]["AP"] == pytest.approx(1.0, abs=1e-12), scorer


@pytest.mark.parametrize(
    ("ids", "expect"),
    [
        (f"1\n{2**53}\n", "line 2: '9007199254740992' is not an image id (a whole number of magnitude"),
        (f"1\n{-(2**53)}\n", "line 2: '-9007199254740992' is not an image id"),
        (f"[1, {2**64}]", "item 1: 18446744073709551616 is not an image id"),
        ("1\n" + "9" * 5000 + "\n", "line 2: '99999999999999999999999999999999999"),
        ("[" + "9" * 5000 + "]", "is not a JSON list of ids"),
    ],
)
def test_an_id_list_with_ids_that_cannot_be_exact_is_refused(
    setup: Setup, ids: str, expect: str, capsys
) -> None:
    path = setup.tmp / "ids.txt"
    path.write_text(ids)
    line = _refused(setup, [*COMMANDS["run"](setup), "--image-ids", str(path)], capsys)
    assert f"dataset.image_ids: {path}" in line and expect in line


# --- files that are not regular files ------------------------------------------------------------


def _fifo(setup: Setup) -> Path:
    path = setup.images / "000000000002.png"
    path.unlink()
    os.mkfifo(path)
    return path


def _folder(setup: Setup) -> Path:
    path = setup.images / "000000000002.png"
    path.unlink()
    path.mkdir()
    return path


def _device(setup: Setup) -> Path:
    path = setup.images / "000000000002.png"
    path.unlink()
    path.symlink_to("/dev/zero")  # a read that never ends
    return path


@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize(
    ("make", "kind"),
    [(_fifo, "a FIFO (named pipe)"), (_folder, "a folder"), (_device, "a character device")],
    ids=["fifo", "folder", "device"],
)
def test_an_image_that_is_not_a_regular_file_is_refused_without_blocking(
    setup: Setup, make: Callable[[Setup], Path], kind: str, command: str, capsys
) -> None:
    path = make(setup)
    # A run stops at the image (image 1, before it, is kept for --resume); its log never holds image 2.
    line = _refused(setup, COMMANDS[command](setup), capsys, may_start="results/new/")
    log = setup.tmp / "results" / "new" / "detections.jsonl"
    if command == "run":
        assert [json.loads(line)["image_id"] for line in log.read_text().splitlines()] == [1]
    assert f"image {path} is {kind}, not an image file" in line


def test_a_fifo_as_id_list_or_annotation_file_is_refused_without_blocking(setup: Setup, capsys) -> None:
    ids = setup.tmp / "ids.fifo"
    os.mkfifo(ids)
    line = _refused(setup, [*COMMANDS["run"](setup), "--image-ids", str(ids)], capsys)
    assert f"dataset.image_ids: {ids} is not a regular file" in line
    setup.annotation_file.unlink()
    os.mkfifo(setup.annotation_file)
    line = _refused(setup, COMMANDS["check"](setup), capsys)
    assert f"annotation file {setup.annotation_file} is not a regular file" in line


# --- YAML: one strict loader ---------------------------------------------------------------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(6)
)


def _yaml_text(setup: Setup, extra: str) -> str:
    return setup.config.read_text() + extra


YAML_FAULTS = [
    ("alias bomb", lambda s: ALIAS_BOMB + s.config.read_text(), "line 1: anchor &a refused"),
    (
        "python tag",
        lambda s: _yaml_text(s, "decode: !!python/object/apply:os.system [echo pwned]\n"),
        "tag 'tag:yaml.org,2002:python/object/apply:os.system' refused",
    ),
    ("binary tag", lambda s: _yaml_text(s, "decode: !!binary aGVsbG8=\n"), "tag 'tag:yaml.org,2002:binary'"),
    (
        "merge key",
        lambda s: "base: &b {clip_boxes: true}\n" + _yaml_text(s, "decode: {<<: *b}\n"),
        "anchor &b refused",
    ),
    ("duplicate key", lambda s: _yaml_text(s, "model: {path: x.onnx}\n"), "duplicate key 'model'"),
    ("syntax error", lambda s: _yaml_text(s, "decode: [\n"), "invalid YAML: expected"),
    ("control character", lambda s: _yaml_text(s, "# \x07\n"), "invalid YAML: unacceptable character #x0007"),
    ("too large", lambda s: _yaml_text(s, "#" + "x" * (1 << 20) + "\n"), "larger than 1,048,576 bytes"),
    (
        "nested too deeply",
        lambda s: _yaml_text(s, "x: " + "[" * 100 + "]" * 100 + "\n"),
        "nested more than 64",
    ),
]


@pytest.mark.parametrize(("name", "make", "expect"), YAML_FAULTS, ids=[f[0] for f in YAML_FAULTS])
def test_a_run_config_is_parsed_strictly(setup: Setup, name: str, make, expect: str, capsys) -> None:
    text = make(setup)
    setup.config.write_text(text)
    line = _refused(setup, COMMANDS["run"](setup), capsys)
    assert f"{setup.config}" in line
    assert expect in line


def test_a_date_stays_the_text_it_was_written_as(setup: Setup, capsys) -> None:
    """PyYAML makes 2024-01-01 a datetime.date, which no JSON record of the run can hold."""
    data = yaml.safe_load(setup.config.read_text())
    data["providers"] = [{"name": "cpu", "options": {"note": "2024-01-01"}}]
    setup.config.write_text(yaml.safe_dump(data).replace("'2024-01-01'", "2024-01-01"))
    assert "note: 2024-01-01" in setup.config.read_text()
    assert main(["--config", str(setup.config), "--run-name", "dated", "--quiet"]) == 0, (
        capsys.readouterr().err
    )
    recorded = load_run_config(setup.tmp / "results" / "dated")
    assert recorded.providers[0].options == {"note": "2024-01-01"}


def test_a_six_level_alias_bomb_is_refused_in_a_comparison_config(setup: Setup, capsys) -> None:
    path = setup.tmp / "compare.yaml"
    path.write_text(ALIAS_BOMB + "runs: [{provider: {name: cpu}}]\n")
    line = _refused(setup, ["compare", "--config", str(path)], capsys)
    assert f"{path}: line 1: anchor &a refused" in line


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        ("session", {"intra_op_threads": 1000000}, "session.intra_op_threads: must be between 0"),
        ("session", {"inter_op_threads": 2000}, "session.inter_op_threads: must be between 0"),
        ("preprocess", {"workers": 10000}, "preprocess.workers: must be at most 64"),
        ("preprocess", {"size": 100000}, "preprocess.size: must be at most 4096"),
    ],
)
def test_numbers_that_size_threads_and_tensors_are_bounded(setup: Setup, key, value, expect, capsys) -> None:
    data = yaml.safe_load(setup.config.read_text())
    data[key] = value
    setup.config.write_text(yaml.safe_dump(data))
    line = _refused(setup, COMMANDS["run"](setup), capsys)
    assert expect in line


# --- the run folder's own files, read back -------------------------------------------------------

CONFIG_DAMAGE = [
    ("syntax error", "model: [\n", "invalid YAML"),
    ("python tag", "model: !!python/object/apply:os.system [echo pwned]\n", "refused"),
    ("alias", "a: &a 1\nb: *a\n", "anchor &a refused"),
    ("not a mapping", "- 1\n", "<top level>: expected a mapping"),
    ("not UTF-8", b"model: \xff\xfe\n", "not UTF-8 text"),
]


@pytest.mark.parametrize("command", ["resume", "score"])
@pytest.mark.parametrize(("name", "text", "expect"), CONFIG_DAMAGE, ids=[d[0] for d in CONFIG_DAMAGE])
def test_a_damaged_run_folder_config_is_one_line(setup: Setup, name, text, expect, command, capsys) -> None:
    path = setup.done / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    line = _refused(setup, COMMANDS[command](setup), capsys)
    assert f"{path}" in line and expect in line
    assert "delete the run folder and run again" in line


LOG_DAMAGE = [
    ("skipped.jsonl", "{not json\n", "line 1 is not a skipped-image record"),
    ("skipped.jsonl", b'{"image_id": 1, "file": "\xff", "reason": "x"}\n', "is not readable text"),
    ("skipped.jsonl", '{"image_id": 18446744073709551616, "file": "a", "reason": "x"}\n', "image_id must be"),
    ("skipped.jsonl", '{"image_id": 9007199254740992, "file": "a", "reason": "x"}\n', "image_id must be"),
    ("skipped.jsonl", '{"image_id": 1, "image_id": 2, "file": "a", "reason": "x"}\n', "duplicate key"),
    ("skipped.jsonl", "[1, 2]\n", "expected an object"),
    ("detections.jsonl", b'{"image_id":1,"boxes":[],"scores":[],"category_ids":[]}\n\xff\n', "not UTF-8"),
    (
        "detections.jsonl",
        '{"image_id":18446744073709551616,"boxes":[],"scores":[],"category_ids":[]}\n',
        "image_id must be an integer",
    ),
    (
        "detections.jsonl",
        '{"image_id":1,"boxes":[1,2,3,4],"scores":[0.5],"category_ids":[1.5]}\n',
        "category_ids must be a list of integers",
    ),
    ("detections.jsonl", '{"image_id":1,"boxes":[1,2,3],"scores":[0.5],"category_ids":[1]}\n', "four a box"),
]


@pytest.mark.parametrize("command", ["resume", "score"])
@pytest.mark.parametrize(("file", "text", "expect"), LOG_DAMAGE)
def test_a_damaged_log_is_one_line_and_stays_as_it_was(
    setup: Setup, file, text, expect, command, capsys
) -> None:
    if file == "skipped.jsonl" and command == "resume":
        pytest.skip("a resume retries the skipped images: it removes skipped.jsonl without reading it")
    path = setup.done / file
    data = text if isinstance(text, bytes) else text.encode()
    if file == "detections.jsonl":
        data = path.read_bytes() + data  # a whole line after the good ones (not a torn tail)
        (setup.done / "detections.npz").unlink()  # the store would otherwise mirror the old log
    path.write_bytes(data)
    line = _refused(setup, COMMANDS[command](setup), capsys)
    assert f"{path}" in line and expect in line
    assert path.read_bytes() == data


# Found by sweeping every JSON file of a finished run folder with damaged content on score, resume,
# compare and baseline: each was exit 3 before (a RecursionError, a 4300-digit ValueError, a
# UnicodeDecodeError, a KeyError, an AttributeError on a mistyped shard).
DEEP = b"[" * 100000 + b"]" * 100000
BIG = b'{"x": ' + b"9" * 5000 + b"}"
READ_BACK_DAMAGE = [
    ("identity.json", BIG, "score", "is not readable JSON (Exceeds the limit (4300 digits)"),
    ("identity.json", DEEP, "resume", "nested too deeply for an ssd_eval file"),
    ("run_info.json", DEEP, "score", "nested too deeply for an ssd_eval file"),
    ("run_info.json", None, "resume", "run_info.json is damaged"),  # None: its shard set to "x"
    ("history.jsonl", DEEP, "score", "history.jsonl line 1 is damaged"),
    ("metrics.json", DEEP, "compare", "nested too deeply for an ssd_eval file"),
    ("metrics.json", b'{"a": "\xff"}', "baseline", "not UTF-8 text"),
    ("metrics.json", b"[1, 2]", "baseline", "is not a metrics file of ssd_eval"),
    ("metrics.json", b'{"stats": {}}', "baseline", "metrics.json lacks or mistypes 'protocol'"),
    ("metrics.json", BIG, "baseline", "is not readable JSON"),
]
READ_BACK_COMMANDS: dict[str, Callable[[Setup], list[str]]] = {
    **COMMANDS,
    "compare": lambda s: ["compare", str(s.done), str(s.done), "--output", str(s.tmp / "cmp")],
    "baseline": lambda s: ["baseline", str(s.done), "--output", str(s.tmp / "b.json")],
}


@pytest.mark.parametrize(("file", "data", "command", "expect"), READ_BACK_DAMAGE)
def test_a_damaged_run_folder_file_read_back_is_one_line(
    setup: Setup, file: str, data: bytes | None, command: str, expect: str, capsys
) -> None:
    path = setup.done / file
    if data is None:
        info = json.loads(path.read_text())
        data = json.dumps({**info, "shard": "x"}).encode()
    path.write_bytes(data)
    line = _refused(setup, READ_BACK_COMMANDS[command](setup), capsys)
    assert str(setup.done) in line and expect in line  # the folder, or the file in it


@pytest.mark.parametrize("flag", ["--config", "--data", "--model", "--output", "--resume"])
def test_a_path_too_long_for_the_file_system_is_one_line(setup: Setup, flag: str, capsys) -> None:
    """Found by the fuzz: ENAMETOOLONG from a Path.is_file() on a 5000-character name was exit 3."""
    command = (
        [flag, "x" * 5000]
        if flag in ("--config", "--resume")
        else ["--config", str(setup.config), flag, "x" * 5000]
    )
    line = _refused(setup, command, capsys)
    assert "File name too long" in line or "file name too long" in line
