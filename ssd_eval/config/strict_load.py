"""The one way ssd_eval parses a YAML or JSON file it did not just make: strictly, boundedly, in one line.

Every YAML file the tool reads (a run or comparison config, a run folder's config.yaml, a comparison
folder's compare.yaml) goes through `load_yaml_file`, and the JSON files of a run folder read back
(identity.json, run_info.json, metrics.json, a baseline, the JSON-lines logs) through `loads_json`.
A fault is one `ConfigError` (exit 2) naming the file, the line when known, and what to do.

YAML is restricted to what a config needs, plain mappings, lists and scalars:
- no tags beyond the plain types (a `!!python/...` tag, `!!binary`, `!!set` are refused) and dates
  stay strings (PyYAML would make a `datetime`, which no JSON record can hold);
- anchors and aliases (`&a`, `*a`, `<<: *a`) are refused outright rather than bounded: no config
  needs them, and six nested aliases in 468 bytes expand to an 11.8 MB tree (each level x9);
- a key given twice in one mapping is refused (PyYAML keeps the last silently);
- the file is at most MAX_YAML_BYTES and nested at most MAX_YAML_DEPTH deep (deeper nesting would
  end in a RecursionError inside the parser).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ssd_eval.errors import ConfigError

# identity.json of val2017 (5000 image ids) is about 60 KB, metrics.json a few hundred KB: a JSON
# file of the tool read back beyond this was not written by it.
MAX_JSON_BYTES = 64 << 20
# A resolved run config is about 2 KB and the bundled comparison configs under 8 KB.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
# The bundled configs' own tree is 4 levels deep; this leaves room, and stays far below Python's
# recursion limit (the composer and constructor recurse once per level, a few frames each).

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _Refused(Exception):
    """A construct the strict loader does not accept, at a line of the file."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader without aliases, anchors, non-plain tags, duplicate keys or deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                line, f"alias *{event.anchor} refused: write the value out (no anchors or aliases)"
            )
        anchor = event.anchor  # every event composed into a node has one (yaml.NodeEvent)
        if anchor is not None:
            raise _Refused(line, f"anchor &{anchor} refused: write the value out (no anchors or aliases)")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _Refused(line, f"nested more than {MAX_YAML_DEPTH} levels deep")
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1


def _tag_refused(node: yaml.Node) -> _Refused:
    return _Refused(
        node.start_mark.line + 1,
        f"tag {node.tag!r} refused: only plain mappings, lists, strings, numbers, booleans and null",
    )


def _refuse_tag(loader: _StrictLoader, node: yaml.Node) -> NoReturn:
    raise _tag_refused(node)


def _date_as_text(loader: _StrictLoader, node: yaml.Node) -> str:
    """A date stays the text it was written as (PyYAML would make a datetime)."""
    if not isinstance(node, yaml.ScalarNode):
        raise _tag_refused(node)
    return node.value


def _mapping_of_unique_keys(loader: _StrictLoader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    """SafeLoader's mapping, refusing a key given twice (it would keep the last silently)."""
    seen: dict[Hashable, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            continue  # a list or a mapping as a key: SafeLoader refuses it ("found unhashable key")
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _Refused(line, f"duplicate key {key!r} (first given on line {seen[key]}); keep one")
        seen[key] = line
    yield from loader.construct_yaml_map(node)


# Every tag SafeLoader constructs beyond the plain ones, and any other (None), is refused; dates stay text.
for _tag in set(yaml.SafeLoader.yaml_constructors) - _PLAIN_TAGS:
    _StrictLoader.add_constructor(_tag, _refuse_tag)
_StrictLoader.add_constructor(_TIMESTAMP_TAG, _date_as_text)
_StrictLoader.add_constructor("tag:yaml.org,2002:map", _mapping_of_unique_keys)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_bounded_text(path: Path, *, limit: int, advice: str) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes, or one ConfigError naming it."""
    try:
        if not path.is_file():  # a FIFO or a device would block, or never end
            raise ConfigError(f"{path}: not a regular file; {advice}")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc}); {advice}") from None
    if len(data) > limit:
        raise ConfigError(f"{path}: larger than {limit:,} bytes, which no ssd_eval file is; {advice}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); {advice}") from None


def load_yaml_file(path: Path, *, advice: str = "") -> object:
    """Parse a YAML file strictly (see the module docstring); a fault is one ConfigError naming it
    (and the line), followed by `advice` (what to do) when given."""
    then = f"; {advice}" if advice else ""
    text = read_bounded_text(path, limit=MAX_YAML_BYTES, advice=advice or "give a YAML config file")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader
    except _Refused as exc:
        raise ConfigError(f"{path}: line {exc.line}: {exc}{then}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = _one_line(exc.problem or exc.context or "a syntax error")
        raise ConfigError(f"{path}:{where} invalid YAML: {problem}{then}") from None
    except yaml.reader.ReaderError as exc:  # a control character (its code point), at a position
        raise ConfigError(
            f"{path}: invalid YAML: unacceptable character #x{exc.character:04x} at character "
            f"{exc.position + 1} (control characters are not allowed){then}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_one_line(exc)[:200]}{then}") from None


class _DuplicateJsonKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateJsonKey(f"duplicate key {key!r}")
        found[key] = value
    return found


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def loads_json(text: str, *, allow_nan: bool = False) -> Any:
    """`json.loads` that refuses a key given twice in an object and (unless `allow_nan`) NaN/Infinity.

    Raises ValueError (json.JSONDecodeError is one) with a one-line message.
    """
    if allow_nan:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def read_json_file(path: Path, *, advice: str, limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON file ssd_eval wrote, read back strictly: one ConfigError naming it and what to do."""
    text = read_bounded_text(path, limit=limit, advice=advice)
    try:
        return loads_json(text)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply for an ssd_eval file; {advice}") from None
    except ValueError as exc:  # also a number of more than 4300 digits
        raise ConfigError(f"{path} is not readable JSON ({_one_line(exc)[:160]}); {advice}") from None
