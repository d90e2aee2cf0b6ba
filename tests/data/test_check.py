"""A corpus of bad files with known bad lines: every reported (line, kind) is asserted."""

from __future__ import annotations

import json

import pytest

import azft.data.check as check_mod
from azft.data import check_file
from azft.errors import DataError, UsageError

from .conftest import GOOD, chat


def errors(report):
    return sorted((p.line, p.kind) for p in report.errors)


def warnings(report):
    return sorted((p.line, p.kind) for p in report.warnings if p.kind != "few-rows")


CHAT_CORPUS = [
    # (lines, expected errors [(line, kind)], expected warnings)
    ([GOOD, "", GOOD], [(2, "blank-line")], [(3, "duplicate-row")]),
    ([GOOD, "{not json", '{"messages": [}'], [(2, "invalid-json"), (3, "invalid-json")], []),
    (["[1, 2]", '"text"', "42"], [(1, "not-an-object"), (2, "not-an-object"), (3, "not-an-object")], []),
    ([{"prompt": "a", "completion": "b"}], [(1, "missing-field")], []),
    ([{"messages": "hi"}, {"messages": []}], [(1, "wrong-type"), (2, "empty-value")], []),
    ([chat(("user", "hi"))], [(1, "no-assistant")], []),
    ([chat(("user", "hi"), ("assistant", "a"), ("user", "more?"))], [(1, "last-not-assistant")], []),
    (
        [chat(("assistant", "I start"), ("user", "hm")), chat(("user", "u"), ("system", "late"), ("assistant", "a"))],
        [(1, "last-not-assistant"), (1, "role-order"), (2, "role-order")],
        [],
    ),
    ([chat(("user", "hi"), ("bot", "hey"), ("assistant", "a"))], [(1, "unknown-role")], []),
    (
        [chat(("user", ""), ("assistant", "a")), chat(("user", "  \n"), ("assistant", "a"))],
        [(1, "empty-value"), (2, "empty-value")],
        [],
    ),
    (
        [
            {"messages": [{"role": "user", "content": ["part"]}, {"role": "assistant", "content": "a"}]},
            {"messages": [{"role": "user"}, {"role": "assistant", "content": None}]},
            {"messages": [{"content": "x"}, {"role": "assistant", "content": "a"}]},
            {"messages": ["user: hi", {"role": "assistant", "content": "a"}]},
        ],
        [(1, "wrong-type"), (2, "missing-field"), (2, "wrong-type"), (3, "missing-field"), (4, "wrong-type")],
        [],
    ),
    ([chat(("user", "hi"), ("user", "again"), ("assistant", "a"))], [], [(1, "role-order")]),
    (
        [
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]},
            {"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "b"}]},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "c", "weight": 0.5}]},
            {"messages": [{"role": "user", "content": "q", "name": 7}, {"role": "assistant", "content": "d"}]},
        ],
        [(1, "invalid-weight"), (2, "invalid-weight"), (3, "invalid-weight"), (4, "wrong-type")],
        [],
    ),
    (
        [
            {**GOOD, "id": 3},
            {"messages": [{"role": "user", "content": "q", "tool_calls": []}, {"role": "assistant", "content": "a"}]},
        ],
        [],
        [(1, "unknown-field"), (2, "unknown-field")],
    ),
]


@pytest.mark.parametrize("lines,want_errors,want_warnings", CHAT_CORPUS)
def test_chat_corpus(write, lines, want_errors, want_warnings):
    report = check_file(write(lines), "chat-completion")
    assert errors(report) == sorted(want_errors)
    assert warnings(report) == sorted(want_warnings)
    assert report.ok == (not want_errors)


def test_json_path_and_message_name_the_field(write):
    report = check_file(write([GOOD, chat(("user", "q"), ("assistant", "a"), ("assistant", ""))]))
    (p,) = report.errors
    assert (p.line, p.field, p.kind) == (2, "messages[2].content", "empty-value")
    assert p.render().startswith(f"{report.path}:2: messages[2].content: ")


def test_invalid_utf8_reported_with_line_and_byte(write):
    bad = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}'
    report = check_file(write([GOOD, bad, GOOD]))
    assert errors(report) == [(2, "invalid-utf8")]
    pos = bad.index(0xE9) + 1
    assert f"0xe9 at byte {pos} " in report.errors[0].message


def test_escaped_unpaired_surrogates_are_invalid_text(write, tokenizer_dir):
    bad = '{"messages": [{"role": "user", "content": "\\ud800 x"}, {"role": "assistant", "content": "a"}]}'
    for tok in (None, str(tokenizer_dir)):
        report = check_file(write([GOOD, bad]), tokenizer=tok)
        assert errors(report) == [(2, "invalid-utf8")] and "surrogate" in report.errors[0].message


def test_bom_is_accepted_only_at_the_start(write):
    good = json.dumps(GOOD).encode()
    report = check_file(write([b"\xef\xbb\xbf" + good, b"\xef\xbb\xbf" + good.replace(b"4", b"5")]))
    assert report.stats.has_bom
    assert errors(report) == [(2, "invalid-json")]
    assert "byte-order mark" in report.errors[0].message


def test_crlf_and_missing_final_newline(write):
    p = write([GOOD, chat(("user", "x"), ("assistant", "y"))], newline=b"\r\n", trailing=False)
    report = check_file(p)
    assert report.ok and report.stats.rows == 2 and report.stats.blank_lines == 0


def test_blank_lines_at_end_are_reported(write):
    report = check_file(write([GOOD, chat(("user", "x"), ("assistant", "y")), "", "  "]))
    assert errors(report) == [(3, "blank-line"), (4, "blank-line")]


def test_large_integers_and_nan(write):
    big = (
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "n": 1'
        + "0" * 30
        + "}"
    )
    report = check_file(write([big, '{"messages": NaN}']))
    assert errors(report) == [(2, "invalid-json")]
    assert warnings(report) == [(1, "unknown-field")]


def test_missing_file_and_directory_raise(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        check_file(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="is a directory"):
        check_file(tmp_path)


def test_empty_and_binary_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    r = check_file(empty)
    assert not r.ok and list(r.error_counts) == ["empty-file"]
    gz = tmp_path / "data.jsonl.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes(range(256)) * 4)
    r = check_file(gz)
    assert list(r.error_counts) == ["binary-file"] and "compressed" in r.errors[0].hint


def test_utf16_file_is_named(tmp_path):
    p = tmp_path / "utf16.jsonl"
    p.write_bytes(json.dumps(GOOD).encode("utf-16"))
    r = check_file(p)
    assert list(r.error_counts) == ["invalid-utf8"] and "UTF-16" in r.errors[0].message


def test_unknown_task_and_model(write):
    p = write([GOOD])
    with pytest.raises(UsageError, match="unknown task"):
        check_file(p, "image-generation")
    with pytest.raises(UsageError, match="unknown model"):
        check_file(p, model="phi-99-giant")


def test_maas_file_size_limit(write, monkeypatch):
    # A real 512 MB file would dominate the test budget; the limit itself is a constant, so lower it.
    monkeypatch.setattr(check_mod, "MAAS_MAX_FILE_BYTES", 100)
    p = write([GOOD] * 3)
    assert "file-too-large" in check_file(p, backend="maas").error_counts
    assert check_file(p, backend="maap").ok


def test_problem_storage_is_capped_but_counts_are_complete(write):
    report = check_file(write([GOOD] + ["{bad"] * 5000 + [chat(("user", "q"))] * 300))
    assert report.error_counts == {"invalid-json": 5000, "no-assistant": 300}
    assert len(report.errors) == 100
    assert [p.line for p in report.grouped()["invalid-json"]][:3] == [2, 3, 4]
    assert report.to_dict()["error_count"] == 5300
    dup = [p for p in report.warnings if p.kind == "duplicate-row"]
    assert report.warning_counts["duplicate-row"] == 5299 - 5000 and len(dup) == 50


# ------------------------------------------------------------------------------------------ other tasks

TASK_CORPUS = [
    (
        "text-generation",
        [
            {"prompt": "p", "completion": "c"},
            {"prompt": "p"},
            {"prompt": 1, "completion": "c"},
            {"prompt": "", "completion": "c2"},
            {"prompt": "p", "completion": " "},
        ],
        [(2, "missing-field"), (3, "wrong-type"), (5, "empty-value")],
        [(4, "empty-value")],
    ),
    (
        "text-classification",
        [
            {"text": "good", "label": "pos"},
            {"text": "bad", "label": 0},
            {"text": "x"},
            {"text": "y", "label": [1]},
            {"sentence": "z", "label": "neg"},
        ],
        [(3, "missing-field"), (4, "wrong-type")],
        [],
    ),
    (
        "token-classification",
        [
            {"tokens": ["New", "York"], "tags": ["B-LOC", "I-LOC"]},
            {"tokens": ["a", "b"], "ner_tags": [0]},
            {"tokens": "a b", "tags": []},
            {"tokens": ["a"]},
            {"tokens": ["a", 3], "tags": [0, 0]},
        ],
        [(2, "length-mismatch"), (3, "wrong-type"), (4, "missing-field"), (5, "wrong-type")],
        [],
    ),
    (
        "translation",
        [{"source": "Hello", "target": "Bonjour"}, {"source": "Hi"}, {"src": "a", "target": "b"}],
        [(2, "missing-field"), (3, "missing-field")],
        [(3, "unknown-field")],
    ),
    (
        "question-answering",
        [
            {"question": "Where?", "context": "In Paris.", "answer": "Paris"},
            {"question": "Where?", "context": "In Paris.", "answer": "Rome"},
            {"question": "Q", "context": "abc def", "answers": {"text": ["def"], "answer_start": [4]}},
            {"question": "Q", "context": "abc def", "answers": {"text": ["def"], "answer_start": [0]}},
            {"question": "Q", "context": "abc"},
        ],
        [(2, "answer-not-in-context"), (4, "answer-not-in-context"), (5, "missing-field")],
        [],
    ),
    (
        "summarization",
        [
            {"document": "long text", "summary": "short"},
            {"article": "a", "highlights": "h"},
            {"document": "d", "summary": ""},
            {"document": None, "summary": "s"},
        ],
        [(3, "empty-value"), (4, "wrong-type")],
        [],
    ),
]


@pytest.mark.parametrize("task,lines,want_errors,want_warnings", TASK_CORPUS, ids=[t[0] for t in TASK_CORPUS])
def test_task_corpus(write, task, lines, want_errors, want_warnings):
    report = check_file(write(lines), task)
    assert errors(report) == sorted(want_errors)
    assert warnings(report) == sorted(want_warnings)


def test_task_is_detected_when_not_given(write):
    assert check_file(write([{"prompt": "a", "completion": "b"}]), None).task == "text-generation"
    assert check_file(write([{"question": "q", "context": "c q", "answer": "q"}]), None).task == "question-answering"
    assert check_file(write(["garbage", GOOD]), None).task == "chat-completion"


def test_label_summary(write):
    rows = [{"text": f"t{i}", "label": "pos" if i % 3 else "neg"} for i in range(30)]
    s = check_file(write(rows), "text-classification").stats
    assert s.labels == {"pos": 20, "neg": 10}
    single = check_file(write([{"text": f"t{i}", "label": 1} for i in range(12)]), "text-classification")
    assert single.warning_counts == {"single-label": 1}


# ------------------------------------------------------------------------------------------ statistics


def test_stats_estimate(write):
    rows = [chat(("user", "x" * 40 * (i + 1)), ("assistant", "y" * 8)) for i in range(20)]
    report = check_file(write(rows), max_tokens=100, epochs=3)
    s = report.stats
    assert not s.token_count_exact and "estimate" in s.tokenizer
    # estimate: 1 per row + 4 per message + chars/4
    assert s.tokens.min == 1 + 4 + 10 + 4 + 2 and s.tokens.max == 1 + 4 + 200 + 4 + 2
    assert s.output_tokens.total == 20 * 3
    assert s.tokens.percentiles["p50"] == 1 + 4 + 100 + 4 + 2
    assert s.billing_tokens_estimate == 3 * s.tokens.total
    over = [r for r in range(20) if 11 + 10 * (r + 1) > 100]
    assert s.over_context_rows == len(over) == report.warning_counts["too-long"]
    assert sum(n for _, _, n in s.tokens.histogram) == 20
    assert s.messages_per_row == {2: 20}
    d = json.loads(json.dumps(report.to_dict()))
    assert d["stats"]["billing_tokens_per_epoch"] == s.tokens.total


def test_context_length_from_catalog(write):
    s = check_file(write([GOOD]), model="phi-3-mini-4k-instruct").stats
    assert s.context_length == 4096
    assert not s.token_count_exact and "not in the local Hugging Face cache" in s.tokenizer


def test_two_workers_give_the_same_report_as_one(write, monkeypatch):
    rows = []
    for i in range(3000):
        if i % 97 == 0:
            rows.append("{broken")
        elif i % 89 == 0:
            rows.append(chat(("user", f"q{i}")))
        elif i % 83 == 0:
            rows.append("")
        else:
            rows.append(chat(("user", f"q{i % 1000} " + "é" * (i % 50)), ("assistant", "a")))
    p = write(rows)
    single = check_file(p, workers=1)
    monkeypatch.setattr(check_mod, "PARALLEL_MIN_BYTES", 0)
    double = check_file(p, workers=2)
    assert double.stats.workers == 2
    assert [(x.line, x.kind) for x in double.errors] == [(x.line, x.kind) for x in single.errors]
    assert [(x.line, x.kind, x.message) for x in double.warnings] == [
        (x.line, x.kind, x.message) for x in single.warnings
    ]
    assert double.error_counts == single.error_counts
    assert double.stats.to_dict() | {"elapsed_s": 0, "workers": 0} == single.stats.to_dict() | {
        "elapsed_s": 0,
        "workers": 0,
    }


def test_small_chunks_split_lines_correctly(write):
    from azft.data.scan import ScanConfig, scan_range

    rows = [GOOD, "{bad", chat(("user", "long " * 500), ("assistant", "ok")), "", "[1]"] * 5
    p = write(rows, trailing=False)
    size = p.stat().st_size
    big = scan_range(ScanConfig(path=str(p), task="chat-completion"), 0, size)
    small = scan_range(ScanConfig(path=str(p), task="chat-completion", chunk_size=7), 0, size)
    assert big.lines == small.lines == 25
    assert big.problems == small.problems and big.tokens == small.tokens
