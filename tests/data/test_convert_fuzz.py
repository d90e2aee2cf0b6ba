"""Generated bad variants of every source format: each value of a real-shaped row replaced by every wrong kind of
value. A conversion never fails on a row (each is converted or skipped with its line) and what it writes always
passes the target's own check."""

from __future__ import annotations

import copy
import json

import pytest

from azft.data import check_file
from azft.data.convert import convert_file

from .test_convert import ALPACA, OPENAI, PROMPT_COMPLETION, SHAREGPT

WRONG = [None, 0, 1, 2.5, True, "", "   ", "x", [], [1, "a"], {}, {"a": None}, "\u0000", "é" * 3, [[["deep"]]]]


def _paths(obj, prefix=()):
    """Every path to a value inside obj (dict keys and list indexes)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _replace(obj, path, value):
    if not path:
        return value
    out = copy.deepcopy(obj)
    cur = out
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return out


def variants(rows: list[dict]) -> list:
    out = []
    for row in rows:
        for path in _paths(row):
            for value in WRONG:
                out.append(_replace(row, path, value))
        out.append({k: v for k, v in row.items() if k != next(iter(row))})  # first field missing
    return out


@pytest.mark.parametrize(
    "fmt,rows",
    [("alpaca", ALPACA), ("sharegpt", SHAREGPT), ("openai", OPENAI), ("prompt-completion", PROMPT_COMPLETION)],
)
@pytest.mark.parametrize("target", ["chat-completion", "text-generation"])
def test_every_variant_is_converted_or_skipped_with_its_line(tmp_path, fmt, rows, target):
    rows = variants(rows)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    rep = convert_file(src, out, source_format=fmt, target=target, cap=100000)
    assert rep.rows == len(rows) and rep.converted + rep.skipped == len(rows)
    assert all(1 <= r["line"] <= len(rows) and r["message"] for r in rep.skipped_rows)
    if rep.converted:
        check = check_file(out, target)
        assert check.ok, [e.render() for e in check.errors[:5]]
