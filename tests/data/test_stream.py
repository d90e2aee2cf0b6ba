"""Every problem on request (`--output jsonl`, `--all`) and the valid/invalid rows split off in the same pass."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from azft.cli_data import data
from azft.data import check, check_file

from .conftest import GOOD, chat


def run(*args):
    return CliRunner().invoke(data, [str(a) for a in args])


def generated(rng: random.Random, n: int) -> tuple[list[bytes], set[int]]:
    """n lines, about a third of them bad in assorted ways; returns (raw lines, 1-based bad line numbers)."""
    lines, bad = [], set()
    for i in range(1, n + 1):
        r = rng.random()
        row = chat(("user", f"question {i} " + "é" * rng.randint(0, 40)), ("assistant", f"answer {i}"))
        if r < 0.08:
            raw = b'{"messages": [' + str(i).encode()  # truncated JSON
        elif r < 0.14:
            raw = json.dumps(chat(("user", f"only a question {i}"))).encode()
        elif r < 0.20:
            raw = json.dumps(
                {"messages": [{"role": "bot", "content": f"x{i}"}, {"role": "assistant", "content": "y"}]}
            ).encode()
        elif r < 0.24:
            raw = b'{"bad\xff bytes": ' + str(i).encode() + b"}"
        elif r < 0.28:
            raw = b"   "
        elif r < 0.33:
            raw = json.dumps(chat(("user", f"q{i}"), ("assistant", ""))).encode()
        else:
            raw = json.dumps(row, ensure_ascii=False).encode()
            if rng.random() < 0.1:
                raw = json.dumps({**row, "id": i}).encode()  # a warning only: still a valid row
            lines.append(raw)
            continue
        lines.append(raw)
        bad.add(i)
    return lines, bad


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def workers(request, monkeypatch):
    if request.param == 2:  # small test files: let worker processes take them anyway
        monkeypatch.setattr(check, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setattr(check, "PARALLEL_MIN_BYTES_EXACT", 0)
    return request.param


def test_jsonl_output_lists_every_bad_line(tmp_path, workers):
    lines, bad = generated(random.Random(7), 6000)
    assert len(bad) > 1500
    p = tmp_path / "big.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    res = run("check", p, "--output", "jsonl", "--workers", workers)
    assert res.exit_code == 2
    out = [json.loads(line) for line in res.output.splitlines()]
    problems, summary = out[:-1], out[-1]
    assert all(o["type"] == "problem" for o in problems) and summary["type"] == "summary"
    error_lines = [o["line"] for o in problems if o["severity"] == "error"]
    assert set(error_lines) == bad
    assert error_lines == sorted(error_lines)  # file order, as found
    # the summary counts are complete and its lists keep their caps
    kinds: dict[str, int] = {}
    for o in problems:
        if o["severity"] == "error":
            kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
    assert summary["error_counts"] == kinds
    assert max(kinds.values()) > 50
    per_kind: dict[str, int] = {}
    for e in summary["errors"]:
        per_kind[e["kind"]] = per_kind.get(e["kind"], 0) + 1
    assert max(per_kind.values()) == 50
    assert summary["stats"]["workers"] == workers
    warnings = [o for o in problems if o["kind"] == "unknown-field"]
    assert warnings and summary["warning_counts"]["unknown-field"] == len(warnings)


def test_all_lists_every_problem_in_the_table_output(write):
    rows = [GOOD if i % 3 else "{oops" for i in range(300)]
    p = write(rows)
    res = run("check", p, "--all")
    assert res.exit_code == 2
    listed = [ln for ln in res.output.splitlines() if ln.startswith("error invalid-json: ")]
    assert len(listed) == 100
    assert f"{p}:298:" in res.output and "more invalid-json" not in res.output
    res = run("check", p, "--all", "-o", "json")
    assert res.exit_code == 2 and "--output jsonl" in res.output


def test_duplicates_are_all_streamed(write):
    p = write([chat(("user", f"q{i % 7}"), ("assistant", "a")) for i in range(200)])
    seen = []
    report = check_file(p, on_problem=seen.append)
    dups = [s for s in seen if s.kind == "duplicate-row"]
    assert len(dups) == report.warning_counts["duplicate-row"] == 193
    assert len([w for w in report.warnings if w.kind == "duplicate-row"]) == 50


def _partition_case(tmp_path, newline: bytes, trailing: bool, bom: bool) -> tuple[bytes, set[int]]:
    lines, bad = generated(random.Random(3), 2500)
    raw = newline.join(lines) + (newline if trailing else b"")
    if bom:
        raw = b"\xef\xbb\xbf" + raw
    return raw, bad


@pytest.mark.parametrize("newline,trailing,bom", [(b"\n", True, False), (b"\r\n", False, True), (b"\n", False, False)])
def test_valid_and_invalid_outputs_partition_the_input(tmp_path, workers, newline, trailing, bom):
    raw, bad = _partition_case(tmp_path, newline, trailing, bom)
    src = tmp_path / "in.jsonl"
    src.write_bytes(raw)
    good_out, bad_out = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    res = run("check", src, "--write-valid", good_out, "--write-invalid", bad_out, "--workers", workers, "-o", "json")
    assert res.exit_code == 2  # the input has errors: the exit code says so, as without the split
    d = json.loads(res.output)
    good, badb = good_out.read_bytes(), bad_out.read_bytes()
    assert len(good) + len(badb) == len(raw)
    in_lines = raw.splitlines(keepends=True)
    g_lines, b_lines = good.splitlines(keepends=True), badb.splitlines(keepends=True)
    assert len(g_lines) + len(b_lines) == len(in_lines)
    assert sorted(g_lines + b_lines) == sorted(in_lines)
    expected_bad = [ln for i, ln in enumerate(in_lines, 1) if i in bad]
    assert b_lines == expected_bad  # order kept
    assert g_lines == [ln for i, ln in enumerate(in_lines, 1) if i not in bad]
    side = [json.loads(x) for x in (tmp_path / "bad.problems.jsonl").read_text().splitlines()]
    assert [s["line"] for s in side] == sorted(bad)
    assert [s["invalid_line"] for s in side] == list(range(1, len(bad) + 1))
    assert all(any(p["severity"] == "error" for p in s["problems"]) for s in side)
    assert d["outputs"]["valid"]["rows"] == len(g_lines) and d["outputs"]["invalid"]["rows"] == len(b_lines)
    # the valid rows pass a check of their own
    res = run("check", good_out, "-o", "json")
    assert res.exit_code == 0, res.output
    assert not list(tmp_path.glob(".*.tmp*"))  # no temporary files left behind


def test_clean_file_split_exits_zero_and_invalid_is_empty(write, tmp_path):
    p = write([GOOD] + [chat(("user", f"q{i}"), ("assistant", "a")) for i in range(20)])
    res = run("check", p, "--write-valid", tmp_path / "v.jsonl", "--write-invalid", tmp_path / "i.jsonl")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "v.jsonl").read_bytes() == p.read_bytes()
    assert (tmp_path / "i.jsonl").read_bytes() == b""
    assert "valid rows: 21" in res.output and "invalid rows: 0" in res.output


def test_unreadable_file_goes_to_invalid_whole(tmp_path):
    src = tmp_path / "utf16.jsonl"
    src.write_bytes(("\ufeff" + json.dumps(GOOD) + "\n").encode("utf-16-le"))
    res = run("check", src, "--write-valid", tmp_path / "v.jsonl", "--write-invalid", tmp_path / "i.jsonl")
    assert res.exit_code == 2
    assert (tmp_path / "v.jsonl").read_bytes() == b""
    assert (tmp_path / "i.jsonl").read_bytes() == src.read_bytes()


def test_split_refuses_to_overwrite_its_input(write, tmp_path):
    p = write([GOOD])
    res = run("check", p, "--write-valid", p)
    assert res.exit_code == 2 and "would overwrite" in res.output
    res = run("check", p, "--write-valid", tmp_path / "x.jsonl", "--write-invalid", tmp_path / "x.jsonl")
    assert res.exit_code == 2 and "same file" in res.output
    res = run("check", p, "--write-valid", tmp_path / "x.problems.jsonl", "--write-invalid", tmp_path / "x.jsonl")
    assert res.exit_code == 2 and "same file" in res.output
    res = run("check", p, "--write-valid", tmp_path / "no-dir" / "x.jsonl")
    assert res.exit_code == 2 and "does not exist" in res.output
    assert p.read_bytes()


def test_exact_token_errors_split_too(write, tmp_path, tokenizer_dir):
    rows = [GOOD, chat(("user", "q"), ("assistant", "a")), "{bad", GOOD]
    p = write(rows)
    rep = check_file(
        p, tokenizer=tokenizer_dir, max_tokens=5, write_valid=tmp_path / "v.jsonl", write_invalid=tmp_path / "i.jsonl"
    )
    assert rep.stats.token_count_exact
    assert (tmp_path / "i.jsonl").read_bytes() == b"{bad\n"
    assert len((tmp_path / "v.jsonl").read_bytes().splitlines()) == 3
