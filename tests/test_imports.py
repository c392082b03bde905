"""The readers' shared checks (ssd_eval/evaluation/imports/__init__.py): the file's top level and the
whole numbers of a record, each refusal asserted whole."""

from __future__ import annotations

import pytest

from ssd_eval.errors import DetectionsFileError
from ssd_eval.evaluation.imports import json_list, whole_number

WHAT = "a list of things"


def refusal(call, *args, **kw) -> str:
    with pytest.raises(DetectionsFileError) as caught:
        call(*args, **kw)
    return str(caught.value)


def test_a_json_list_is_read_with_nan_and_unicode():
    assert json_list('[1, NaN, "é"]'.encode(), source="f.json", what=WHAT)[2] == "é"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xff[]", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        (b"[1,", "Expecting value: line 1 column 4 (char 3)"),
    ],
)
def test_unreadable_json_is_refused_naming_the_file_and_the_format(data, why):
    assert refusal(json_list, data, source="f.json", what=WHAT) == (
        f"f.json is not readable JSON ({why}): expected a list of things"
    )


def test_a_key_given_twice_is_refused():
    message = refusal(json_list, b'[{"a": 1, "a": 2}]', source="f.json", what=WHAT)
    assert message.startswith("f.json is not readable JSON (") and "duplicate key 'a'" in message


def test_a_top_level_that_is_not_a_list_is_refused():
    assert refusal(json_list, b'"x"', source="f.json", what=WHAT) == (
        "f.json: the top level is a str, expected a list of things"
    )


@pytest.mark.parametrize(
    ("record", "shown"),
    [({}, "missing"), ({"n": True}, "True, not a whole number"), ({"n": 1.0}, "1.0, not a whole number")],
)
def test_a_value_that_is_not_a_whole_number_is_refused(record, shown):
    assert refusal(whole_number, record, "n", "f.json: record 3") == f"f.json: record 3: n is {shown}"


def test_a_whole_number_is_read():
    assert whole_number({"n": -7}, "n", "here") == -7
