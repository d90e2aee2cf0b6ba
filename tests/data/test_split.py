"""Deterministic train/validation splits."""

from __future__ import annotations

import json
import random

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
    t, v = split_file(p, 0.5, 1, out_dir=tmp_path / "out", check=False)
    lines = sorted(read(t) + read(v))
    assert lines == [b'{"a": 1}\n', b'{"a": 2}\n', b'{"a": 3}\n']
    assert len(read(v)) == 2  # round(3 * 0.5)


def test_split_keeps_at_least_one_row_on_each_side(write, tmp_path):
    p = write(['{"a": 1}', '{"a": 2}'])
    t, v = split_file(p, 0.01, 0, out_dir=tmp_path, check=False)
    assert len(read(t)) == 1 and len(read(v)) == 1


def test_split_errors(write, tmp_path):
    with pytest.raises(UsageError):
        split_file(write(['{"a": 1}', '{"a": 2}']), 1.5, 0, check=False)
    with pytest.raises(DataError, match="at least 2"):
        split_file(write(['{"a": 1}']), 0.5, 0, check=False)
    with pytest.raises(DataError, match="no such file"):
        split_file(tmp_path / "missing.jsonl", 0.5, 0)


# ---------------------------------------------------------------------------------------------------------------
# The input is checked first, duplicates stay on one side, outputs are not overwritten silently


def test_split_checks_its_input_first_and_names_file_and_line(write, run_cli, tmp_path):
    good = chat(("user", "q"), ("assistant", "a"))
    p = write(
        [good, chat(("user", "only a question")), '{"messages": 3}', chat(("user", "q2"), ("assistant", "b"))],
        name="mixed.jsonl",
    )
    res = run_cli("data", "split", str(p), "--out-dir", str(tmp_path / "out"))
    assert res.code == 2, res.text
    assert f"{p}:2: messages: no assistant message" in res.err and f"{p}:3: messages:" in res.err
    assert "nothing was split" in res.err and not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="2 problem"):
        split_file(p, 0.5, 0, out_dir=tmp_path / "api")
    # the same checks as `azft data check`: a task given explicitly is checked as that task
    res = run_cli("data", "split", str(p), "--task", "text-generation", "--output", "json")
    assert res.code == 2 and json.loads(res.out)["problems"][0]["line"] == 1


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("pattern", ["pairs", "one-big-group", "mostly-duplicates"])
def test_exact_duplicates_are_never_on_both_sides(write, tmp_path, seed, pattern):
    unique = [chat(("user", f"q{i}"), ("assistant", f"a{i}")) for i in range(30)]
    rows = {
        "pairs": unique + unique[:10],
        "one-big-group": unique[:10] + [unique[0]] * 15,
        "mostly-duplicates": [unique[i % 3] for i in range(20)] + unique[3:6],
    }[pattern]
    random.Random(seed).shuffle(rows)
    p = write(rows, name="dups.jsonl")
    info: dict = {}
    t, v = split_file(p, 0.2, seed, out_dir=tmp_path / "out", info=info)
    train, val = read(t), read(v)
    assert train and val and len(train) + len(val) == len(rows)
    assert not set(train) & set(val)  # a validation row is never also a training row
    assert info["duplicate_groups"] >= 1 and info["task"] == "chat-completion"


def test_split_refuses_to_overwrite_without_force(rows_file, run_cli, tmp_path):
    out = tmp_path / "out"
    first = run_cli("data", "split", str(rows_file), "--out-dir", str(out), "--output", "json")
    assert first.code == 0, first.text
    (out / "train.validation.jsonl").write_text("kept\n")
    again = run_cli("data", "split", str(rows_file), "--out-dir", str(out))
    assert again.code == 2 and "already exist" in again.err and "--force" in again.err
    assert (out / "train.validation.jsonl").read_text() == "kept\n"
    forced = run_cli("data", "split", str(rows_file), "--out-dir", str(out), "--force", "--output", "json")
    assert forced.code == 0, forced.text
    assert json.loads(forced.out)["validation_rows"] == 10 and len(read(out / "train.validation.jsonl")) == 10
