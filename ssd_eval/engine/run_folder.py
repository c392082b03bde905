"""A run folder on disk: its files, its recorded config and run info, the skipped-image log.

Everything that reads or writes a run folder (run, resume, score, merge, compare) goes through here,
so the layout is defined once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ssd_eval.config.run import RunConfig, config_from_dict
from ssd_eval.config.schema import config_to_dict
from ssd_eval.config.strict_load import load_yaml_file, loads_json, read_json_file
from ssd_eval.data.annotation_checks import MAX_ID, exact_id
from ssd_eval.data.dataset import CocoGroundTruth, Shard, reselect
from ssd_eval.errors import ConfigError, OutputError
from ssd_eval.evaluation.identity import (
    IdentityFormatError,
    RunIdentity,
    gate_rules,
    identity_from_json,
    run_identity,
)
from ssd_eval.files import (
    CONFIG_FILE,
    DETECTION_LOG,
    GATE_BASELINE_FILE,
    HISTORY_FILE,
    IDENTITY_FILE,
    LOCK_FILE,
    PICTURES_DIR,
    RUN_FILES,
    RUN_INFO_FILE,
    check_own_files,
    open_append,
    open_own_file,
    write_json_atomic,
    write_text_atomic,
)
from ssd_eval.reports.baseline import (
    Baseline,
    baseline_digest,
    load_gate_baseline,
    read_baseline,
    write_baseline,
)
from ssd_eval.reports.results import ModelInfo, Provenance, SkippedImage, provenance_from_json


def check_writable(folder: Path) -> None:
    """Fail early, before any model loads, if the run folder cannot be created."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"output folder {folder} cannot be created: {existing} is not a writable folder; "
            "set output.dir in the config or --output"
        )


def check_not_link(folder: Path, what: str) -> None:
    """A folder the command creates (a new run folder, a merge's output, a comparison folder) is a real
    folder of its own: a symbolic link under its name, which would send its files elsewhere, is refused.
    The folders above it may be links (a `results/` on scratch storage)."""
    if folder.is_symlink():
        raise OutputError(
            f"{what} {folder} is a symbolic link: ssd-eval writes a new folder of its own there (link the "
            "folder above it if it should live elsewhere); remove the link or choose another name"
        )


def check_apart(output: Path, inputs: Sequence[Path], *, what: str, parent_ok: bool = False) -> None:
    """Refuse an output folder that is one of the input folders it is made from (after resolving links),
    or inside one, or (unless `parent_ok`: a comparison folder holds its runs) holds one."""
    out = output.resolve()
    for folder in inputs:
        given = folder.resolve()
        if out == given:
            relation = "the same folder as"
        elif out.is_relative_to(given):
            relation = "inside"
        elif given.is_relative_to(out) and not parent_ok:
            relation = "a folder holding"
        else:
            continue
        raise OutputError(
            f"{what} {output} is {relation} the run folder {folder} it is made from: write it into a "
            "folder of its own (another --output)"
        )


def is_run_folder(folder: Path) -> bool:
    """A folder written by a run: its config and its run info or detection log are there."""
    return (folder / CONFIG_FILE).is_file() and (
        (folder / RUN_INFO_FILE).is_file() or (folder / DETECTION_LOG).is_file()
    )


def _has_content(folder: Path) -> bool:
    return folder.is_dir() and any(p.name != LOCK_FILE for p in folder.iterdir())


# What to do about a run folder that is already there, by the command that met it.
RUN_ADVICE = (
    "continue it with --resume {folder}, choose another --run-name, or set output.overwrite: true",
    "choose another --run-name",
)
MERGE_ADVICE = ("pass --overwrite to replace it, or choose another --output", "choose another --output")


def check_run_folder_free(
    folder: Path, config: RunConfig, *, resume: bool, advice: tuple[str, str] = RUN_ADVICE
) -> None:
    """Refuse, before anything loads, to start a run where one exists (unless overwrite) or where files
    that are not a run's would be replaced. `advice`: what the command can do instead, when the folder
    holds a run and when it holds something else (`run`'s flags, or `merge`'s)."""
    if resume:
        return  # reading its config.yaml already proved it a run folder
    check_not_link(folder, "run folder")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"run folder {folder} is a file: choose another --run-name or --output")
    if not _has_content(folder):
        return
    if not config.output.overwrite:
        raise OutputError(f"run folder {folder} already exists: {advice[0].format(folder=folder)}")
    if not is_run_folder(folder):
        raise OutputError(
            f"{folder} holds files but is not a run folder (no {CONFIG_FILE} with {RUN_INFO_FILE} or "
            f"{DETECTION_LOG}), so nothing in it is replaced; {advice[1]}"
        )


def prepare_run_folder(
    folder: Path, config: RunConfig, *, resume: bool, note: str = "", advice: tuple[str, str] = RUN_ADVICE
) -> None:
    """Create the run folder and record its config (after `note`, YAML comment lines); never overwrite
    a finished run silently, and never replace a folder that does not hold a run."""
    check_run_folder_free(folder, config, resume=resume, advice=advice)
    if _has_content(folder) and not resume:
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)  # a link under one of these names: the link goes
        pictures = folder / PICTURES_DIR  # a run's worst-image pictures go with the run they show
        if pictures.is_symlink():
            pictures.unlink()
        elif pictures.is_dir():
            shutil.rmtree(pictures)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        config_text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
        write_text_atomic(folder / CONFIG_FILE, note + config_text)
    except OSError as exc:
        raise OutputError(f"cannot write the run folder {folder}: {exc.strerror}") from None


# The lock file holds one fixed-width line naming its holder, written in place (never truncated).
_LOCK_RECORD_BYTES = 64
BUSY_RUN = "wait for it to end (or stop it), or choose another --run-name"
BUSY_OTHER = "wait for it to end (or stop it), then run this command again"


@contextlib.contextmanager
def locked_run_folder(folder: Path, *, create: bool = True, busy: str = BUSY_RUN) -> Iterator[None]:
    """Hold the folder's lock file (`run.lock`, fcntl.flock) while a command writes into it.

    Every command that writes into a run folder (run, --resume, score, merge) or a comparison folder
    holds it, so a second one is refused at once (`busy` says what to do) instead of mixing its files
    with the first one's. The lock goes with the process, however it ends. `create`: the folder is one
    of the command's own making (a new run, a merge, a comparison): made if missing, and refused if it
    is a symbolic link; a folder this call created and that holds nothing but the lock afterwards (the
    command failed before writing) is removed again, with the parents this call created (a run that
    fails before its first image leaves no empty `results/` behind). Without `create` (score, a
    resume) the folder is the one named, links and all. The lock file is opened without following a
    link and never truncated (`files.open_own_file`).
    """
    if create:
        check_not_link(folder, "run folder" if busy == BUSY_RUN else "output folder")
    created = [p for p in (folder, *folder.parents) if not p.exists()] if create else []
    lock_path = folder / LOCK_FILE
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        fd = open_own_file(lock_path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise OutputError(f"cannot write the run folder {folder}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            first = os.pread(fd, _LOCK_RECORD_BYTES, 0).decode("utf-8", "replace").split("\n")[0]
            holder = first.strip() or "another process"
            raise OutputError(f"run folder {folder} is in use by {holder}: {busy}") from None
        try:
            check_own_files(folder)  # before anything is written: an appended file planted as a link
            record = f"ssd-eval pid {os.getpid()}".ljust(_LOCK_RECORD_BYTES - 1) + "\n"
            with contextlib.suppress(OSError):  # the name is only a courtesy to the next process
                os.pwrite(fd, record.encode("utf-8"), 0)
            yield
        finally:
            if created and not _has_content(folder):
                lock_path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    for made in created:  # innermost first; rmdir refuses a folder that is not empty
                        made.rmdir()
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """An OSError while writing a run file (a full disk, a read-only folder) is one OutputError naming it;
    what was written before stays, and the run continues from it."""
    try:
        yield
    except OSError as exc:
        fix = "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "make the folder writable"
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc}; {fix}, then continue with --resume {path.parent}"
        ) from None


# What to do about a damaged file of a run folder: it was written by ssd-eval and is not edited by hand.
REMAKE_RUN = "it is written by `ssd-eval run`: restore it from a copy, or delete the run folder and run again"


def load_run_config(folder: Path) -> RunConfig:
    """The resolved config a run folder was started with (for --resume and re-scoring)."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise OutputError(f"{folder} is not a run folder: it has no {CONFIG_FILE}")
    raw = load_yaml_file(path, advice=REMAKE_RUN)
    try:
        config = config_from_dict(raw, base_dir=folder, source=path)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; {REMAKE_RUN}") from None
    return replace(config, output=replace(config.output, dir=folder.parent, run_name=folder.name))


def append_skipped(path: Path, item: SkippedImage) -> None:
    with writing(path), open_append(path, text=True) as handle:
        handle.write(json.dumps({"image_id": item.image_id, "file": item.file, "reason": item.reason}) + "\n")


def read_skipped(path: Path) -> dict[int, SkippedImage]:
    """The images a run skipped (`skipped.jsonl`); a damaged line is one OutputError naming it."""
    found: dict[int, SkippedImage] = {}
    if not path.is_file():
        return found
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path} is not readable text ({exc}); {REMAKE_RUN}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads_json(line)
            item = _skipped_record(record)
        except (ValueError, RecursionError) as exc:
            raise OutputError(
                f"{path} line {number} is not a skipped-image record ({exc}); {REMAKE_RUN}"
            ) from None
        found[item.image_id] = item
    return found


def _skipped_record(record: object) -> SkippedImage:
    if not isinstance(record, dict):
        raise ValueError("expected an object")
    raw_id, file, reason = (record.get(key) for key in ("image_id", "file", "reason"))
    image_id = exact_id(raw_id)
    if image_id is None:
        shown = repr(raw_id)[:40]
        raise ValueError(f"image_id must be an integer with |id| <= {MAX_ID} (2**53 - 1), got {shown}")
    if not isinstance(file, str) or not isinstance(reason, str):
        raise ValueError("file and reason must be strings")
    return SkippedImage(image_id, file, reason)


@dataclass(frozen=True)
class RunInfo:
    """What a run folder was produced with, written before the first image (`run_info.json`).

    `ssd-eval score` and `ssd-eval merge` read it: they need no model session to know what ran.
    """

    model: ModelInfo
    input_size: tuple[int, int] | None  # None: not known (detections imported from elsewhere)
    shard: str | None
    providers_requested: tuple[str, ...]
    providers_used: tuple[str, ...]
    provider_options: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunInfo:
        shard = data.get("shard")
        if shard is not None and not isinstance(shard, str):
            raise ValueError("shard: expected null or K/N")
        if shard is not None:
            parse_shard(shard)  # a ValueError unless it is K/N
        return cls(
            model=ModelInfo(**data["model"]),
            input_size=_input_size(data["input_size"]),
            shard=shard,
            providers_requested=tuple(data["providers_requested"]),
            providers_used=tuple(data["providers_used"]),
            provider_options=tuple(data["provider_options"]),
        )


def _input_size(value: Any) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def read_run_info(folder: Path) -> RunInfo | None:
    path = folder / RUN_INFO_FILE
    if not path.is_file():
        return None
    data = read_json_file(path, advice=REMAKE_RUN)
    try:
        return RunInfo.from_json(data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise OutputError(
            f"{path} is damaged; it is written by `ssd-eval run` and should not be edited: {REMAKE_RUN}"
        ) from None


def write_run_info(folder: Path, info: RunInfo) -> None:
    path = folder / RUN_INFO_FILE
    with writing(path):
        write_json_atomic(path, info.to_json())


def write_identity(folder: Path, identity: RunIdentity) -> None:
    """Record what the run is, once, before its first image (a resumed run keeps its own)."""
    path = folder / IDENTITY_FILE
    with writing(path):
        write_json_atomic(path, identity.to_json())


def read_identity(folder: Path) -> RunIdentity | None:
    """The identity a run folder recorded, or None for a folder written by an older ssd_eval."""
    path = folder / IDENTITY_FILE
    if not path.is_file():
        return None
    advice = (
        "it is written once by `ssd-eval run` before the first image and never changed: restore it from "
        "a copy, or rerun the run"
    )
    data = read_json_file(path, advice=advice)
    try:
        return identity_from_json(data)
    except (IdentityFormatError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise OutputError(
            f"{path} is damaged ({exc}); it is written once by `ssd-eval run` before the first image and "
            "never changed: restore it from a copy, or rerun the run"
        ) from None


def folder_rules(config: RunConfig, folder: Path) -> dict[str, object]:
    """The gate rules a run folder's config names, its baseline by content."""
    baseline = gate_baseline(config, folder)
    return gate_rules(config.expected, config.gate, baseline_digest(baseline) if baseline else None)


def derived_identity(
    folder: Path, config: RunConfig, info: RunInfo, gt: CocoGroundTruth, *, legacy: bool = True
) -> RunIdentity:
    """The identity of a run from its config, run info and the ground truth of its images.

    A new run (`legacy=False`) is given the ground truth its config chose. A folder written before
    identity.json existed (`legacy=True`) has its images chosen again by its own settings, and its
    ground truth is taken as the one given now: it recorded none.
    """
    if info.input_size is None:  # only an imported run leaves it unknown, and it has identity.json
        raise OutputError(f"{folder} has no {IDENTITY_FILE}, and its {RUN_INFO_FILE} names no input size")
    if legacy:
        shard = parse_shard(info.shard) if info.shard else None
        dataset = config.dataset
        if (gt.selection, gt.limit, gt.shard, gt.id_list) != (dataset.selection, dataset.limit, shard, None):
            gt = reselect(gt, selection=dataset.selection, limit=dataset.limit, shard=shard, id_list=None)
    return run_identity(
        gt,
        model_sha256=info.model.sha256,
        model_name=Path(info.model.path).name,
        provider=info.providers_requested[0] if info.providers_requested else "",
        preprocess=config.preprocess,
        input_size=info.input_size,
        decode=config.decode,
        scorer=config.scoring.backend,
        rules=folder_rules(config, folder),
    )


def append_history(folder: Path, entry: Provenance) -> None:
    """Add one command's entry to the folder's history (history.jsonl); earlier entries stay."""
    path = folder / HISTORY_FILE
    with writing(path), open_append(path, text=True) as handle:
        handle.write(json.dumps(entry.to_json(), allow_nan=False) + "\n")


def read_history(folder: Path) -> tuple[Provenance, ...]:
    """Every command that worked on the run folder, oldest first (empty for an older folder)."""
    path = folder / HISTORY_FILE
    if not path.is_file():
        return ()
    entries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path} is not readable text ({exc}); remove it to start a new history") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(provenance_from_json(loads_json(line)))
        except (ValueError, RecursionError, AttributeError) as exc:
            raise OutputError(
                f"{path} line {number} is damaged ({exc}); it is written by ssd-eval: remove that line "
                "(the run's timings then leave out its part)"
            ) from None
    return tuple(entries)


def parse_shard(text: str) -> Shard:
    """`K/N` (1-based, as on the command line) -> Shard."""
    k, _, n = text.partition("/")
    if not (k.isascii() and k.isdigit() and n.isascii() and n.isdigit() and len(k) <= 9 and len(n) <= 9):
        raise ValueError(f"a shard is K/N (whole numbers), got {text[:40]!r}")
    return Shard(index=int(k) - 1, count=int(n))


def write_gate_baseline(folder: Path, baseline: Baseline | None) -> None:
    """Copy the baseline a run is gated against into its folder: score and merge re-apply the same figures."""
    if baseline is not None:
        write_baseline(folder / GATE_BASELINE_FILE, baseline, overwrite=True)


def run_baseline(config: RunConfig, folder: Path, *, resume: bool) -> Baseline | None:
    """The baseline a run being started (its config's file) or resumed (its folder's copy) is gated
    against, read and checked before any model loads: a bad one is exit 2, not a wasted run."""
    if resume:
        return gate_baseline(config, folder)
    where = str(config.source_file) if config.source_file is not None else "config"
    return load_gate_baseline(config.gate, where=where)


def gate_baseline(config: RunConfig, folder: Path) -> Baseline | None:
    """The baseline a run folder's gate names: the run's own copy when it has one, else the config's file."""
    if config.gate.baseline is None:
        return None
    copy = folder / GATE_BASELINE_FILE
    if copy.is_file():
        return read_baseline(copy)
    return load_gate_baseline(config.gate, where=str(folder / CONFIG_FILE))
