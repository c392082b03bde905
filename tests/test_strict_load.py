"""The strict YAML and JSON readers (ssd_eval/config/strict_load.py): what they accept, and each refusal as
its whole line (file, line, what is wrong, what to do)."""

from __future__ import annotations

import errno
import json
import math
from pathlib import Path

import pytest

from ssd_eval.config.strict_load import (
    MAX_YAML_BYTES,
    load_yaml_file,
    loads_json,
    read_bounded_text,
    read_json_file,
)
from ssd_eval.errors import ConfigError

PLAIN = "only plain mappings, lists, strings, numbers, booleans and null"
NO_ANCHORS = "write the value out (no anchors or aliases)"


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(path: Path, advice: str = "fix it") -> str:
    with pytest.raises(ConfigError) as info:
        load_yaml_file(path, advice=advice)
    return str(info.value)


def test_plain_yaml_reads_as_python_values(tmp_path):
    path = _yaml(
        tmp_path,
        "name: coco\nsize: [1200, 1200]\nscale: 0.5\nstrict: true\nnothing: ~\n"
        "nested:\n  list:\n    - {a: 1}\n    - b\n",
    )
    assert load_yaml_file(path) == {
        "name": "coco",
        "size": [1200, 1200],
        "scale": 0.5,
        "strict": True,
        "nothing": None,
        "nested": {"list": [{"a": 1}, "b"]},
    }


def test_an_empty_file_is_none(tmp_path):
    assert load_yaml_file(_yaml(tmp_path, "")) is None


def test_dates_stay_the_text_they_were_written_as(tmp_path):
    path = _yaml(tmp_path, "day: 2024-01-02\nwhen: 2001-12-14t21:59:43.10-05:00\n")
    assert load_yaml_file(path) == {"day": "2024-01-02", "when": "2001-12-14t21:59:43.10-05:00"}


def test_a_timestamp_tag_on_a_list_is_refused(tmp_path):
    path = _yaml(tmp_path, "a: 1\nday: !!timestamp [1]\n")
    assert _refusal(path) == f"{path}: line 2: tag 'tag:yaml.org,2002:timestamp' refused: {PLAIN}; fix it"


@pytest.mark.parametrize(
    ("text", "line", "tag"),
    [
        ("a: 1\nrun: !!python/name:os.system\n", 2, "tag:yaml.org,2002:python/name:os.system"),
        ("blob: !!binary aGk=\n", 1, "tag:yaml.org,2002:binary"),
        ("a: 1\nb: 2\ns: !!set {a, b}\n", 3, "tag:yaml.org,2002:set"),
        ("x: !mine 1\n", 1, "!mine"),
    ],
)
def test_a_tag_beyond_the_plain_types_is_refused_naming_it_and_its_line(tmp_path, text, line, tag):
    path = _yaml(tmp_path, text)
    assert _refusal(path) == f"{path}: line {line}: tag '{tag}' refused: {PLAIN}; fix it"


def test_an_alias_is_refused(tmp_path):
    path = _yaml(tmp_path, "a: 1\nb: *x\n")
    assert _refusal(path) == f"{path}: line 2: alias *x refused: {NO_ANCHORS}; fix it"


@pytest.mark.parametrize(("text", "line"), [("a: 1\nb: &x 2\n", 2), ("a: &big {b: 1}\n", 1)])
def test_an_anchor_is_refused(tmp_path, text, line):
    path = _yaml(tmp_path, text)
    anchor = "x" if line == 2 else "big"
    assert _refusal(path) == f"{path}: line {line}: anchor &{anchor} refused: {NO_ANCHORS}; fix it"


def test_sixty_four_levels_are_read_sixty_five_refused(tmp_path):
    deepest = load_yaml_file(_yaml(tmp_path, "[" * 64 + "]" * 64))
    for _ in range(63):
        assert isinstance(deepest, list) and len(deepest) == 1
        deepest = deepest[0]
    assert deepest == []
    path = _yaml(tmp_path, "\n" + "[" * 65 + "]" * 65)
    assert _refusal(path) == f"{path}: line 2: nested more than 64 levels deep; fix it"


def test_depth_counts_nesting_not_the_number_of_values(tmp_path):
    """200 values side by side in a mapping and in a list: two levels deep, read."""
    wide = "".join(f"k{i}: {i}\n" for i in range(100)) + "list: [" + ", ".join(map(str, range(100))) + "]\n"
    value = load_yaml_file(_yaml(tmp_path, wide))
    assert isinstance(value, dict) and len(value) == 101 and value["list"] == list(range(100))


def test_depth_is_counted_again_after_a_value_ends(tmp_path):
    """A scalar three levels deep, then a sibling list with 63 more levels: 65 levels, refused. (A count
    that lost its place after the scalar would let it pass.)"""
    path = _yaml(tmp_path, "[[0, " + "[" * 63 + "]" * 63 + "]]")
    assert _refusal(path) == f"{path}: line 1: nested more than 64 levels deep; fix it"
    value = load_yaml_file(_yaml(tmp_path, "[[0, " + "[" * 62 + "]" * 62 + "]]"))  # 64 levels: read
    assert isinstance(value, list) and value[0][0] == 0


@pytest.mark.parametrize(
    ("text", "line", "key", "first"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "'a'", 1),
        ("outer:\n  x: 1\n  x: 2\n", 3, "'x'", 2),
        ("1: a\n2: b\n1: c\n", 3, "1", 1),
        ("true: a\nyes: b\n", 2, "True", 1),  # YAML 1.1: yes is true
        ("1.5: a\n1.50: b\n", 2, "1.5", 1),
        ("~: a\nnull: b\n", 2, "None", 1),  # two spellings of the null key
    ],
)
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, text, line, key, first):
    path = _yaml(tmp_path, text)
    assert _refusal(path) == (
        f"{path}: line {line}: duplicate key {key} (first given on line {first}); keep one; fix it"
    )


def test_a_list_as_a_key_is_invalid_yaml_not_a_crash(tmp_path):
    path = _yaml(tmp_path, "a: 1\n[1]: b\n")
    assert _refusal(path) == f"{path}: line 2 invalid YAML: found unhashable key; fix it"
    path = _yaml(tmp_path, "[1]: a\nb: 1\nb: 2\n")  # the keys after it are still checked
    assert _refusal(path) == f"{path}: line 3: duplicate key 'b' (first given on line 2); keep one; fix it"


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("a: b: c\n", " line 1", "mapping values are not allowed here"),
        # the problem's line (2), not the line of the list it interrupts (1)
        ("a: [1, 2\nb: 3\n", " line 2", "expected ',' or ']', but got ':'"),
        ("a: 1\n---\nb: 2\n", " line 2", "but found another document"),
    ],
)
def test_invalid_yaml_names_the_problems_line(tmp_path, text, where, problem):
    path = _yaml(tmp_path, text)
    assert _refusal(path) == f"{path}:{where} invalid YAML: {problem}; fix it"


def test_a_problem_spread_over_lines_is_told_in_one(tmp_path, monkeypatch):
    import yaml

    raised = [yaml.MarkedYAMLError(context="while  reading\n  a value", problem=None), yaml.MarkedYAMLError()]

    def fails(text, Loader):
        raise raised.pop(0)

    monkeypatch.setattr(yaml, "load", fails)
    path = _yaml(tmp_path, "a: 1\n")
    assert _refusal(path) == f"{path}: invalid YAML: while reading a value; fix it"
    assert _refusal(path) == f"{path}: invalid YAML: a syntax error; fix it"  # neither problem nor context


def test_a_control_character_is_refused_naming_its_code_and_place(tmp_path):
    path = _yaml(tmp_path, "a: b\x01\n")
    assert _refusal(path) == (
        f"{path}: invalid YAML: unacceptable character #x0001 at character 5 "
        "(control characters are not allowed); fix it"
    )


def test_another_yaml_error_is_one_line_of_at_most_200_characters(tmp_path, monkeypatch):
    import yaml

    def fails(text, Loader):
        raise yaml.YAMLError("first   line\nsecond line " + "x" * 300)

    monkeypatch.setattr(yaml, "load", fails)
    path = _yaml(tmp_path, "a: 1\n")
    shown = ("first line second line " + "x" * 300)[:200]
    assert _refusal(path) == f"{path}: invalid YAML: {shown}; fix it"


def test_without_advice_a_refusal_ends_at_the_problem(tmp_path):
    path = _yaml(tmp_path, "a: 1\na: 2\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_file(path)
    assert str(info.value) == f"{path}: line 2: duplicate key 'a' (first given on line 1); keep one"
    path = _yaml(tmp_path, "a: b: c\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_file(path)
    assert str(info.value) == f"{path}: line 1 invalid YAML: mapping values are not allowed here"


def test_a_yaml_file_that_is_not_text_is_refused_with_the_default_advice(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(b"a: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_file(path)
    assert str(info.value) == f"{path}: not UTF-8 text (byte 3); give a YAML config file"
    assert _refusal(path, advice="fix it") == f"{path}: not UTF-8 text (byte 3); fix it"


def test_a_yaml_file_of_more_than_one_mib_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("#" * (MAX_YAML_BYTES - 1) + "\n", encoding="utf-8")
    assert load_yaml_file(path) is None  # 1 MiB exactly: a comment, read
    path.write_text("#" * MAX_YAML_BYTES + "\n", encoding="utf-8")
    assert _refusal(path) == f"{path}: larger than 1,048,576 bytes, which no ssd_eval file is; fix it"


# read_bounded_text


def test_bounded_text_reads_up_to_its_limit(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes("é123456789".encode())  # 11 bytes
    assert read_bounded_text(path, limit=11, advice="a") == "é123456789"
    with pytest.raises(ConfigError) as info:
        read_bounded_text(path, limit=10, advice="do this")
    assert str(info.value) == f"{path}: larger than 10 bytes, which no ssd_eval file is; do this"


def test_bounded_text_reads_no_more_than_it_needs_to_decide(tmp_path, monkeypatch):
    """A file of gigabytes given by mistake is never read whole: one read of limit + 1 bytes tells."""
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 100)
    sizes: list[object] = []
    real_open = Path.open

    class Spy:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, size=-1):
            sizes.append(size)
            return self.handle.read(size)

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Spy(real_open(self, *a, **k)))
    with pytest.raises(ConfigError, match="larger than 10 bytes"):
        read_bounded_text(path, limit=10, advice="a")
    assert sizes == [11]


def test_bounded_text_refuses_a_folder_and_a_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        read_bounded_text(tmp_path, limit=10, advice="give a file")
    assert str(info.value) == f"{tmp_path}: not a regular file; give a file"
    with pytest.raises(ConfigError) as info:
        read_bounded_text(tmp_path / "missing.yaml", limit=10, advice="give a file")
    assert str(info.value) == f"{tmp_path / 'missing.yaml'}: not a regular file; give a file"


def test_bounded_text_names_a_read_error(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    path.write_text("x", encoding="utf-8")

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ConfigError) as info:
        read_bounded_text(path, limit=10, advice="check it")
    assert str(info.value) == f"{path}: cannot read it (Permission denied); check it"

    def plain(self, *args, **kwargs):  # an OSError without strerror: its text
        raise OSError("the disk went away")

    monkeypatch.setattr(Path, "open", plain)
    with pytest.raises(ConfigError) as info:
        read_bounded_text(path, limit=10, advice="check it")
    assert str(info.value) == f"{path}: cannot read it (the disk went away); check it"


# JSON


def test_loads_json_refuses_a_key_given_twice_at_any_depth():
    assert loads_json('{"a": 1, "b": {"a": 2}}') == {"a": 1, "b": {"a": 2}}
    with pytest.raises(ValueError) as info:
        loads_json('{"a": 1, "b": {"c": 2, "c": 3}}')
    assert str(info.value) == "duplicate key 'c'"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_loads_json_refuses_nan_and_infinity_unless_allowed(constant):
    with pytest.raises(ValueError) as info:
        loads_json(f"[1, {constant}]")
    assert str(info.value) == f"{constant} is not a JSON number"
    value = loads_json(f"[1, {constant}]", allow_nan=True)[1]
    if constant == "NaN":
        assert math.isnan(value)
    else:
        assert value == (math.inf if constant == "Infinity" else -math.inf)
    with pytest.raises(ValueError, match=r"^duplicate key 'a'$"):
        loads_json(f'{{"a": {constant}, "a": 1}}', allow_nan=True)


def _json(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "metrics.json"
    path.write_text(text, encoding="utf-8")
    return path


def _json_refusal(path: Path, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        read_json_file(path, advice="run the command again", **kwargs)
    return str(info.value)


def test_read_json_file_reads_what_ssd_eval_writes(tmp_path):
    record = {"stats": [0.25, -1.0], "model": {"sha256": "ab" * 32, "size": 3}, "ok": True, "none": None}
    assert read_json_file(_json(tmp_path, json.dumps(record, indent=2)), advice="x") == record


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"ap": NaN}', "NaN is not a JSON number"),
        ('{"a": 1,}', "Expecting property name enclosed in double quotes: line 1 column 9 (char 8)"),
        ('{"a   b": 1, "a   b": 2}', "duplicate key 'a b'"),  # told in one line, runs of spaces as one
        (
            "1" * 5000,
            "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; "
            "use sys.set_int_max_str_digits() to increase the limit",
        ),
    ],
)
def test_read_json_file_refuses_what_ssd_eval_does_not_write(tmp_path, text, problem):
    path = _json(tmp_path, text)
    assert _json_refusal(path) == f"{path} is not readable JSON ({problem}); run the command again"


def test_a_json_problem_is_shown_in_at_most_160_characters(tmp_path):
    key = "k" * 300
    path = _json(tmp_path, f'{{"{key}": 1, "{key}": 2}}')
    shown = ("duplicate key '" + key)[:160]
    assert _json_refusal(path) == f"{path} is not readable JSON ({shown}); run the command again"


def test_json_nested_too_deeply_is_refused(tmp_path):
    path = _json(tmp_path, "[" * 100_000 + "]" * 100_000)
    assert _json_refusal(path) == f"{path}: nested too deeply for an ssd_eval file; run the command again"


def test_read_json_file_has_a_size_limit(tmp_path):
    path = _json(tmp_path, '{"a": 1}')  # 8 bytes
    assert read_json_file(path, advice="x", limit=8) == {"a": 1}
    assert _json_refusal(path, limit=7) == (
        f"{path}: larger than 7 bytes, which no ssd_eval file is; run the command again"
    )
