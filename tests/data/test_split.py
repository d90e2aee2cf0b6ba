"""Deterministic train/validation splits."""

from __future__ import annotations

import pytest

from azft.data import split_file
from azft.errors import DataError, UsageError

from .conftest import chat


@pytest.fixture
def rows_file(write):
    return write([chat(("user", f"q{i}"), ("assistant", f"a{i}")) for i in range(100)], name="train.jsonl")


def read(p):
    return p.read_bytes().splitlines(keepends=True)


def test_split_is_deterministic_and_complete(rows_file, tmp_path):
    t1, v1 = split_file(rows_file, 0.1, 42, out_dir=tmp_path / "a")
    t2, v2 = split_file(rows_file, 0.1, 42, out_dir=tmp_path / "b")
    assert (t1.name, v1.name) == ("train.train.jsonl", "train.validation.jsonl")
    assert read(t1) == read(t2) and read(v1) == read(v2)
    assert len(read(v1)) == 10 and len(read(t1)) == 90
    original = read(rows_file)
    assert sorted(read(t1) + read(v1)) == sorted(original)
    # original order is kept inside each file
    assert read(t1) == [line for line in original if line in set(read(t1))]
    _, v3 = split_file(rows_file, 0.1, 7, out_dir=tmp_path / "c")
    assert read(v3) != read(v1)


def test_split_drops_blank_lines_and_bom_and_adds_final_newline(write, tmp_path):
    p = write([b"\xef\xbb\xbf" + b'{"a": 1}', "", '{"a": 2}', '{"a": 3}'], trailing=False)
    t, v = split_file(p, 0.5, 1, out_dir=tmp_path / "out")
    lines = sorted(read(t) + read(v))
    assert lines == [b'{"a": 1}\n', b'{"a": 2}\n', b'{"a": 3}\n']
    assert len(read(v)) == 2  # round(3 * 0.5)


def test_split_keeps_at_least_one_row_on_each_side(write, tmp_path):
    p = write(['{"a": 1}', '{"a": 2}'])
    t, v = split_file(p, 0.01, 0, out_dir=tmp_path)
    assert len(read(t)) == 1 and len(read(v)) == 1


def test_split_errors(write, tmp_path):
    with pytest.raises(UsageError):
        split_file(write(['{"a": 1}', '{"a": 2}']), 1.5, 0)
    with pytest.raises(DataError, match="at least 2"):
        split_file(write(['{"a": 1}']), 0.5, 0)
    with pytest.raises(DataError, match="no such file"):
        split_file(tmp_path / "missing.jsonl", 0.5, 0)
