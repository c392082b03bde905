"""What a run *is*: its model, ground truth, images, preprocessing, decoding, scorer and gate rules.

A `RunIdentity` is written once into the run folder (`identity.json`) before the first image and is
never changed. Every path that puts a run beside something else asks it `differences(other, aspects)`
instead of re-deriving its own view: `--resume` (every aspect), `score --data` (the ground truth and
the images), `merge` (everything but the shard), `compare` (ground truth, images, decoding), and the
gate (a baseline holds a run of the same ground truth and images). The differences are in words, one
per fact, so a refusal names exactly what differs.

The ground truth is identified by content, not by path or bytes: a digest of the categories, the
evaluated images and their annotations (what COCOeval reads of them), so another copy of the same
annotations is recognised and an edited one is not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from ssd_eval.config.run import DecodeConfig, ExpectedConfig, GateConfig, PreprocessConfig
from ssd_eval.config.schema import config_to_dict
from ssd_eval.data.dataset import CocoGroundTruth
from ssd_eval.files import file_sha256, sha256_bytes

SCHEMA = "ssd_eval.identity/1"

# What an imported run (`ssd-eval import`: detections made elsewhere) records where ssd_eval does not
# know the fact: its model's sha256 (unless the user names the model) and its preprocessing.
NOT_KNOWN = "not known"

# "image set" is the ids of the whole selection alone; "images" is also how they were chosen
# (selection, limit, id list), and implies "image set".
Aspect = Literal[
    "model",
    "provider",
    "ground truth",
    "images",
    "image set",
    "shard",
    "preprocess",
    "decode",
    "scorer",
    "rules",
]
ALL_ASPECTS: tuple[Aspect, ...] = get_args(Aspect)
# What a figure measured on a run depends on besides the model: the same images (however chosen: the
# first 6, or a list of those 6) of the same ground truth.
FIGURE_ASPECTS: tuple[Aspect, ...] = ("ground truth", "image set")


def ids_digest(image_ids: Iterable[int]) -> str:
    """The sha256 of a set of image ids (ascending, comma-separated): the same set, the same digest."""
    return sha256_bytes(",".join(str(i) for i in sorted(image_ids)).encode("ascii"))


def ground_truth_digest(coco_json: Mapping[str, Any], image_ids: Iterable[int]) -> str:
    """The sha256 of what COCOeval reads of these images: the categories (id, name), each image's id,
    size and file name, and each of their annotations' id, category, box, area and crowd flag.

    Numbers are normalised (100 and 100.0 are one area), key order and file order do not count.
    """
    wanted = set(image_ids)
    categories = sorted((int(c["id"]), str(c["name"])) for c in coco_json["categories"])
    images = sorted(
        (int(im["id"]), int(im["width"]), int(im["height"]), str(im["file_name"]))
        for im in coco_json["images"]
        if im["id"] in wanted
    )
    annotations = sorted(
        (
            int(a["image_id"]),
            int(a["id"]),
            int(a["category_id"]),
            [float(v) for v in a["bbox"]],
            float(a.get("area", 0.0)),
            int(bool(a.get("iscrowd"))),  # absent: not a crowd
        )
        for a in coco_json["annotations"]
        if a["image_id"] in wanted
    )
    text = json.dumps([categories, images, annotations], separators=(",", ":"))
    return sha256_bytes(text.encode("utf-8"))


@dataclass(frozen=True)
class GroundTruthIdentity:
    """The annotation file a run was scored against, by content."""

    content_digest: str  # ground_truth_digest over the whole selection (before any shard)
    annotation_sha256: str  # of the file's bytes (context: a re-serialised copy differs here only)
    total_images: int  # images in the file
    annotated_images: int  # images in the file with at least one annotation


@dataclass(frozen=True)
class ImageSelection:
    """Which images a run evaluates: the whole selection, and the part of it this run covers."""

    selection: str  # annotated | all
    limit: int | None
    id_list_sha256: str | None  # the dataset.image_ids file's sha256, when the ids came from a list
    whole_count: int  # images of the whole selection (selection, id list, limit: before any shard)
    whole_digest: str  # ids_digest of those
    shard: str | None  # "K/N", or None for the whole
    count: int  # images this run evaluates
    digest: str  # ids_digest of those
    image_ids: tuple[int, ...] = ()  # those ids, ascending; () where a record keeps the digest only

    @property
    def is_shard(self) -> bool:
        return self.shard is not None

    @property
    def subset(self) -> str:
        """How the whole selection was narrowed ("limit 200", "id list abc123…"), or ""."""
        parts = [f"limit {self.limit}" if self.limit is not None else ""]
        parts.append(f"id list {self.id_list_sha256[:12]}…" if self.id_list_sha256 else "")
        return ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class DetectionSource:
    """Where an imported run's detections came from: a file made by another harness, not ssd_eval's
    own inference (`ssd-eval import`)."""

    format: str  # coco-results | mlperf
    file_name: str
    file_sha256: str
    producer: str | None  # what made them, in the user's words ("TensorRT 8.6 fp16"); None: not said
    image_order: str | None  # mlperf: the image list qsl_idx indexes (file | annotated | annotated-set)
    ignore_extra: bool  # records of images outside the selection were left out (--ignore-extra)
    extra_ignored: int  # how many records (or log entries) that left out
    repeats_ignored: int  # mlperf: entries of a qsl_idx already seen (the first counts)
    partial: bool  # the file covers only some images of the selection: the run is scored on those

    def describe(self) -> str:
        """One line, e.g. "MLPerf accuracy log mlperf_log_accuracy.json (sha256 0123456789ab…) from TensorRT
        8.6, image order annotated (2 repeated entries ignored)"."""
        kind = "MLPerf accuracy log" if self.format == "mlperf" else "COCO results file"
        made = f" from {self.producer}" if self.producer else ""
        order = f", image order {self.image_order}" if self.image_order else ""
        notes = (
            [f"{_count(self.extra_ignored, 'record')} of other images ignored"] if self.ignore_extra else []
        )
        notes += [f"{_count(self.repeats_ignored, 'repeated entry')} ignored"] if self.repeats_ignored else []
        notes += ["covers part of the selection: scored on the images it covers"] if self.partial else []
        tail = f" ({'; '.join(notes)})" if notes else ""
        return f"{kind} {self.file_name} (sha256 {self.file_sha256[:12]}…){made}{order}{tail}"


@dataclass(frozen=True)
class Difference:
    """One fact on which two identities differ."""

    key: str  # the config key or fact, e.g. dataset.limit
    aspect: Aspect
    mine: str
    theirs: str

    def describe(self, here: str, there: str) -> str:
        return f"{self.key} is {self.mine} in {here} but {self.theirs} in {there}"


@dataclass(frozen=True)
class RunIdentity:
    """What a run is. Written once (identity.json) and read by every path that relates runs.

    An imported run (`source` set) was inferred elsewhere: its model sha256 is NOT_KNOWN unless the user
    named the model, its preprocessing is NOT_KNOWN (input size, mean and std None), and its decode
    settings are what ssd_eval applied to the imported detections (no score cut, no clipping).
    """

    model_sha256: str  # lower case, or NOT_KNOWN
    model_name: str  # the file name (context)
    provider: str  # the execution provider under test (the first requested)
    ground_truth: GroundTruthIdentity
    images: ImageSelection
    preprocess: str  # backend, or NOT_KNOWN
    input_size: tuple[int, int] | None  # None: not known (imported)
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    score_threshold: float
    clip_boxes: bool
    scorer: str
    rules: Mapping[str, Any]  # the gate's rules, flat: {"expected.value": 0.195, "gate.baseline": "sha256 …"}
    source: DetectionSource | None = None  # imported detections: where they came from; None: ssd_eval ran

    @property
    def model_known(self) -> bool:
        return self.model_sha256 != NOT_KNOWN

    def differences(
        self, other: RunIdentity, aspects: Sequence[Aspect] = ALL_ASPECTS
    ) -> tuple[Difference, ...]:
        """The facts of `aspects` on which this identity and `other` differ, in words."""
        wanted = set(aspects) | ({"image set"} if "images" in aspects else set())
        found: list[Difference] = []
        for key, aspect, get, show in _FACTS:
            if aspect not in wanted:
                continue
            mine, theirs = get(self), get(other)
            # A model that is not known is no model's: not even another unknown one's.
            unknown = aspect == "model" and NOT_KNOWN in (mine, theirs)
            if mine != theirs or unknown:
                found.append(Difference(key, aspect, show(mine), show(theirs)))
        if "rules" in aspects:
            for key in sorted(set(self.rules) | set(other.rules)):
                mine, theirs = self.rules.get(key), other.rules.get(key)
                if mine != theirs:
                    found.append(Difference(key, "rules", _show(mine), _show(theirs)))
        # What follows from another difference is not named again: the ids' digest from selection,
        # id list and limit; the annotations' digest (over the selected images) from the images.
        if any(d.key in ("dataset.selection", "dataset.limit", "dataset.image_ids") for d in found):
            found = [d for d in found if d.key != "images"]
        if any(d.aspect in ("images", "image set") for d in found):
            found = [d for d in found if d.aspect != "ground truth"]
        return tuple(found)

    def whole(self, image_ids: Sequence[int]) -> RunIdentity:
        """The identity of the whole run this shard is part of (what `merge` makes of its shards)."""
        images = ImageSelection(
            selection=self.images.selection,
            limit=self.images.limit,
            id_list_sha256=self.images.id_list_sha256,
            whole_count=self.images.whole_count,
            whole_digest=self.images.whole_digest,
            shard=None,
            count=len(image_ids),
            digest=ids_digest(image_ids),
            image_ids=tuple(sorted(image_ids)),
        )
        return replace(self, images=images)

    def to_json(self, *, with_ids: bool = True) -> dict[str, Any]:
        images = dict(self.images.__dict__)
        images["image_ids"] = list(self.images.image_ids) if with_ids else []
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "model_sha256": self.model_sha256,
            "model_name": self.model_name,
            "provider": self.provider,
            "ground_truth": dict(self.ground_truth.__dict__),
            "images": images,
            "preprocess": self.preprocess,
            "input_size": list(self.input_size) if self.input_size is not None else None,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "score_threshold": self.score_threshold,
            "clip_boxes": self.clip_boxes,
            "scorer": self.scorer,
            "rules": dict(self.rules),
        }
        # Only an imported run has the key: the identity of every other run (and the digest of a
        # baseline holding one) stays what it was.
        if self.source is not None:
            data["source"] = dict(self.source.__dict__)
        return data


def _show(value: object) -> str:
    if value is None:
        return "null"
    if value == NOT_KNOWN:
        return NOT_KNOWN
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return f"sha256 {value[:12]}…"
    return repr(value) if isinstance(value, str) else str(value)


def _images(identity: RunIdentity) -> tuple[int, str]:
    return identity.images.whole_count, identity.images.whole_digest


def _show_images(value: object) -> str:
    assert isinstance(value, tuple)  # (count, digest), from _images
    count, digest = value
    return f"{count} images (ids sha256 {str(digest)[:12]}…)"


def _show_part(value: object) -> str:
    return f"shard {value}" if value else "the whole selection (no shard)"


def _size(size: tuple[int, int] | None) -> str | None:
    return "x".join(map(str, size)) if size is not None else None


def _show_known(value: object) -> str:
    return NOT_KNOWN if value is None else str(value)


def _show_gt(value: object) -> str:
    return f"annotations with content sha256 {str(value)[:12]}…"


_FACTS: tuple[tuple[str, Aspect, Callable[[RunIdentity], object], Callable[[object], str]], ...] = (
    ("model sha256", "model", lambda i: i.model_sha256.lower(), _show),
    ("provider", "provider", lambda i: i.provider, _show),
    ("ground truth", "ground truth", lambda i: i.ground_truth.content_digest, _show_gt),
    ("dataset.selection", "images", lambda i: i.images.selection, _show),
    ("dataset.image_ids", "images", lambda i: i.images.id_list_sha256, _show),
    ("dataset.limit", "images", lambda i: i.images.limit, _show),
    ("images", "image set", _images, _show_images),
    ("shard", "shard", lambda i: i.images.shard, _show_part),
    ("preprocess.backend", "preprocess", lambda i: i.preprocess, _show),
    ("input size", "preprocess", lambda i: _size(i.input_size), _show_known),
    ("preprocess.mean", "preprocess", lambda i: list(i.mean) if i.mean is not None else None, _show_known),
    ("preprocess.std", "preprocess", lambda i: list(i.std) if i.std is not None else None, _show_known),
    ("decode.score_threshold", "decode", lambda i: i.score_threshold, _show),
    ("decode.clip_boxes", "decode", lambda i: i.clip_boxes, _show),
    ("scoring.backend", "scorer", lambda i: i.scorer, _show),
)


def describe_differences(differences: Sequence[Difference], here: str, there: str) -> str:
    """All differences in one clause: "dataset.limit is 2 in X but null in Y; …"."""
    return "; ".join(d.describe(here, there) for d in differences)


def flat_rules(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested rules mapping as dotted keys ({"gate": {"min_ap": 0.2}} -> {"gate.min_ap": 0.2})."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_rules(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = list(value)
        else:
            flat[name] = value
    return flat


def gate_rules(
    expected: ExpectedConfig | None, gate: GateConfig, baseline_sha256: str | None
) -> dict[str, Any]:
    """The rules a run is gated by, flat, with the baseline named by its content (its path differs
    from machine to machine). `gate.required` is left out: it decides the exit code, not the verdict."""
    tree: dict[str, Any] = {"expected": config_to_dict(expected)}  # None stays None
    gate_tree = dict(config_to_dict(gate))
    del gate_tree["required"]
    gate_tree["baseline"] = baseline_sha256
    tree["gate"] = gate_tree
    return flat_rules(tree)


def run_identity(
    gt: CocoGroundTruth,
    *,
    model_sha256: str,
    model_name: str,
    provider: str,
    preprocess: PreprocessConfig,
    input_size: tuple[int, int],
    decode: DecodeConfig,
    scorer: str,
    rules: Mapping[str, Any],
    annotation_sha256: str | None = None,
) -> RunIdentity:
    """The identity of an evaluation of `gt`'s images with these settings."""
    ground_truth, images = ground_truth_and_images(gt, annotation_sha256)
    return RunIdentity(
        model_sha256=model_sha256.lower(),
        model_name=model_name,
        provider=provider,
        ground_truth=ground_truth,
        images=images,
        preprocess=preprocess.backend,
        input_size=(int(input_size[0]), int(input_size[1])),
        mean=preprocess.mean,
        std=preprocess.std,
        score_threshold=float(decode.score_threshold),
        clip_boxes=bool(decode.clip_boxes),
        scorer=scorer,
        rules=dict(rules),
    )


def ground_truth_and_images(
    gt: CocoGroundTruth, annotation_sha256: str | None = None
) -> tuple[GroundTruthIdentity, ImageSelection]:
    """What an identity records of `gt`: its annotations by content, and the images it evaluates."""
    whole = gt.whole_image_ids or tuple(gt.image_ids)
    ids = tuple(sorted(gt.image_ids))
    ground_truth = GroundTruthIdentity(
        content_digest=ground_truth_digest(gt.coco_json, whole),
        annotation_sha256=annotation_sha256 or file_sha256(Path(gt.annotation_file)),
        total_images=gt.total_images,
        annotated_images=gt.annotated_images,
    )
    images = ImageSelection(
        selection=gt.selection,
        limit=gt.limit,
        id_list_sha256=gt.id_list.sha256 if gt.id_list is not None else None,
        whole_count=len(whole),
        whole_digest=ids_digest(whole),
        shard=str(gt.shard) if gt.shard is not None else None,
        count=len(ids),
        digest=ids_digest(ids),
        image_ids=ids,
    )
    return ground_truth, images


def with_ground_truth(identity: RunIdentity, gt: CocoGroundTruth) -> RunIdentity:
    """`identity` with the ground truth and images of `gt` (what scoring the run against `gt` would be):
    compared with the run's own, it says whether `gt` is the ground truth the run was made for."""
    ground_truth, images = ground_truth_and_images(gt)
    return replace(identity, ground_truth=ground_truth, images=images)


class IdentityFormatError(ValueError):
    """identity.json is not one this ssd_eval can read (the message names the key)."""


# What a key of identity.json must hold, in JSON's words (the refusal names it).
_KINDS: dict[type | tuple[type, ...], str] = {
    str: "a string",
    int: "a whole number",
    (int, float): "a number",
    bool: "true or false",
    dict: "an object",
    list: "a list",
}


def _get(
    data: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str = "",
    *,
    optional: bool = False,
) -> Any:
    """data[key] if it is of `kind` (true and false are no numbers), or None for an optional key that is
    absent or null."""
    value = data.get(key)
    if optional and value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        wanted = f"not {_KINDS[kind]} or null" if optional else f"missing or not {_KINDS[kind]}"
        raise IdentityFormatError(f"{where}{key}: {wanted}")
    return value


def _count(n: int, thing: str) -> str:
    """`1 record`, `2 records`, `1 repeated entry`, `0 repeated entries`."""
    if n == 1:
        return f"1 {thing}"
    return f"{n} {thing[:-1]}ies" if thing.endswith("y") else f"{n} {thing}s"


def _sha(value: object, key: str) -> str:
    """A sha256 as JSON text (a number of 64 digits is not one), in lower case."""
    if (
        not isinstance(value, str)
        or len(value) != 64
        or any(c not in "0123456789abcdef" for c in value.lower())
    ):
        raise IdentityFormatError(f"{key}: not a sha256 (64 hexadecimal digits)")
    return value.lower()


def _model_sha(value: str) -> str:
    return NOT_KNOWN if value == NOT_KNOWN else _sha(value, "model_sha256")


def _triple(value: object, key: str) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise IdentityFormatError(f"{key}: expected 3 numbers")
    numbers = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise IdentityFormatError(f"{key}: expected 3 finite numbers")
        numbers.append(float(v))
    return numbers[0], numbers[1], numbers[2]


def identity_from_json(data: object) -> RunIdentity:
    """Read back `RunIdentity.to_json()`; anything else is an IdentityFormatError naming the key."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise IdentityFormatError(f'not a run identity (expected "schema": "{SCHEMA}")')
    gt = _get(data, "ground_truth", dict)
    im = _get(data, "images", dict)
    ids = _get(im, "image_ids", list, "images.")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise IdentityFormatError("images.image_ids: expected whole numbers")
    source = _source(data.get("source"))
    # Only an imported run may leave its preprocessing unknown (null).
    size = _get(data, "input_size", list) if source is None or data.get("input_size") is not None else None
    if size is not None and (
        len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)
    ):
        raise IdentityFormatError("input_size: expected [height, width], whole numbers >= 1")
    unknown = source is not None and size is None
    rules = _get(data, "rules", dict)
    images = ImageSelection(
        selection=_get(im, "selection", str, "images."),
        limit=_get(im, "limit", int, "images.", optional=True),
        id_list_sha256=(
            None if im.get("id_list_sha256") is None else _sha(im["id_list_sha256"], "images.id_list_sha256")
        ),
        whole_count=_get(im, "whole_count", int, "images."),
        whole_digest=_sha(_get(im, "whole_digest", str, "images."), "images.whole_digest"),
        shard=_get(im, "shard", str, "images.", optional=True),
        count=_get(im, "count", int, "images."),
        digest=_sha(_get(im, "digest", str, "images."), "images.digest"),
        image_ids=tuple(sorted(ids)),
    )
    if images.image_ids and (len(images.image_ids) != images.count or ids_digest(ids) != images.digest):
        raise IdentityFormatError("images.image_ids: do not match images.count and images.digest")
    return RunIdentity(
        model_sha256=_model_sha(_get(data, "model_sha256", str)),
        model_name=_get(data, "model_name", str),
        provider=_get(data, "provider", str),
        ground_truth=GroundTruthIdentity(
            content_digest=_sha(
                _get(gt, "content_digest", str, "ground_truth."), "ground_truth.content_digest"
            ),
            annotation_sha256=_sha(
                _get(gt, "annotation_sha256", str, "ground_truth."), "ground_truth.annotation_sha256"
            ),
            total_images=_get(gt, "total_images", int, "ground_truth."),
            annotated_images=_get(gt, "annotated_images", int, "ground_truth."),
        ),
        images=images,
        preprocess=_get(data, "preprocess", str),
        input_size=(size[0], size[1]) if size is not None else None,
        mean=None if unknown and data.get("mean") is None else _triple(data.get("mean"), "mean"),
        std=None if unknown and data.get("std") is None else _triple(data.get("std"), "std"),
        score_threshold=float(_get(data, "score_threshold", (int, float))),
        clip_boxes=_get(data, "clip_boxes", bool),
        scorer=_get(data, "scorer", str),
        rules=dict(rules),
        source=source,
    )


def _source(value: object) -> DetectionSource | None:
    """identity.json's `source` (an imported run's), or None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise IdentityFormatError("source: expected an object (where imported detections came from)")
    where = "source."
    return DetectionSource(
        format=_get(value, "format", str, where),
        file_name=_get(value, "file_name", str, where),
        file_sha256=_sha(_get(value, "file_sha256", str, where), "source.file_sha256"),
        producer=_get(value, "producer", str, where, optional=True),
        image_order=_get(value, "image_order", str, where, optional=True),
        ignore_extra=_get(value, "ignore_extra", bool, where),
        extra_ignored=_get(value, "extra_ignored", int, where),
        repeats_ignored=_get(value, "repeats_ignored", int, where),
        partial=_get(value, "partial", bool, where),
    )
