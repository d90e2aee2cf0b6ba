"""`azft data check|stats|split` as a user runs them: output, JSON for CI, exit codes."""

from __future__ import annotations

import json

from click.testing import CliRunner

from azft.cli_data import data

from .conftest import GOOD, chat


def run(*args):
    return CliRunner().invoke(data, [str(a) for a in args])


def test_check_exit_codes_and_grouped_table(write):
    good = write([GOOD, chat(("user", "x"), ("assistant", "y"))], name="good.jsonl")
    res = run("check", good, "--task", "chat-completion")
    assert res.exit_code == 0, res.output
    assert "OK" in res.output
    bad = write([GOOD, "{oops", chat(("user", "q")), "{oops"], name="bad.jsonl")
    res = run("check", bad)
    assert res.exit_code == 2
    assert "invalid-json" in res.output and "no-assistant" in res.output
    assert f"{bad}:2:" in res.output and f"{bad}:4:" in res.output


def test_check_json_output(write):
    bad = write([GOOD, chat(("user", "q"), ("assistant", ""))])
    res = run("check", bad, "-o", "json", "--context-length", "8")
    assert res.exit_code == 2
    d = json.loads(res.output)
    assert d["ok"] is False and d["error_counts"] == {"empty-value": 1}
    assert d["errors"][0] == {
        "message": "'content' is empty",
        "file": str(bad),
        "line": 2,
        "field": "messages[1].content",
        "severity": "error",
        "kind": "empty-value",
    }
    assert d["stats"]["context_length"] == 8 and d["warning_counts"]["too-long"] == 1


def test_check_file_errors_are_messages_not_tracebacks(tmp_path):
    res = run("check", tmp_path / "missing.jsonl")
    assert res.exit_code == 2 and "no such file" in res.output and "Traceback" not in res.output
    res = run("check", tmp_path)
    assert res.exit_code == 2 and "is a directory" in res.output
    res = run("check", tmp_path / "x.jsonl", "--model", "no-such-model")
    assert res.exit_code == 2
    res = run("stats", tmp_path / "missing.jsonl", "-o", "json")
    assert res.exit_code == 2 and json.loads(res.output)["error"].endswith("no such file")


def test_stats_table_and_json(write, tokenizer_dir):
    rows = [chat(("user", "word " * (i + 1)), ("assistant", "ok")) for i in range(40)] + [GOOD, GOOD]
    p = write(rows)
    res = run("stats", p, "--tokenizer", tokenizer_dir, "--context-length", "30", "--epochs", "2")
    assert res.exit_code == 0, res.output
    for text in ("tokens per row", "p95", "assistant tokens", "duplicate rows", "over 30 tokens", "billing tokens"):
        assert text in res.output
    assert "ESTIMATE" not in res.output
    res = run("stats", p, "-o", "json")
    s = json.loads(res.output)["stats"]
    assert s["rows"] == 42 and s["duplicate_rows"] == 1 and s["token_count_exact"] is False
    assert s["billing_tokens_estimate"] == s["tokens"]["total"]
    res = run("stats", p)
    assert "ESTIMATE" in res.output


def test_split_command(write, tmp_path):
    p = write([chat(("user", f"q{i}"), ("assistant", "a")) for i in range(20)], name="d.jsonl")
    res = run("split", p, "--validation", "0.25", "--seed", "1", "--out-dir", tmp_path / "out", "-o", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert (d["train_rows"], d["validation_rows"]) == (15, 5)
    res = run("split", p, "--validation", "2")
    assert res.exit_code == 2
