"""Property tests: no input crashes the checker, and the report is always JSON-serialisable."""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azft.data import TASKS, check_file

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "", None, 3])
messages = st.lists(
    st.dictionaries(st.sampled_from(["role", "content", "name", "weight", "x"]), roles | json_values, max_size=5),
    max_size=5,
)
chat_like = st.fixed_dictionaries({"messages": messages | json_values})
task_like = st.dictionaries(
    st.sampled_from(
        [
            "prompt",
            "completion",
            "text",
            "label",
            "tokens",
            "tags",
            "source",
            "target",
            "question",
            "context",
            "answer",
            "answers",
            "document",
            "summary",
            "messages",
        ]
    ),
    json_values | st.lists(st.text(max_size=5), max_size=4),
    max_size=5,
)


escaped_lines = st.lists(
    st.sampled_from(
        [
            '"\\ud800"',
            '"\\udfff x"',
            '"ok"',
            '"\\u00e9"',
            "1" + "0" * 25,
            "[]",
            '{"role": "assistant", "content": "\\ud83d"}',
        ]
    ),
    max_size=6,
)


def _check_all_tasks(path):
    for task in TASKS:
        report = check_file(path, task)
        d = report.to_dict()
        json.dumps(d)
        assert report.ok == (d["error_count"] == 0)
        assert d["stats"]["rows"] <= d["stats"]["lines"] or d["stats"]["lines"] == 0


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(tmp_path, data):
    p = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    p.write_bytes(data)
    _check_all_tasks(p)


@SETTINGS
@given(st.lists(chat_like | task_like | json_values, min_size=1, max_size=6))
def test_random_json_never_crashes(tmp_path, rows):
    p = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    _check_all_tasks(p)


@SETTINGS
@given(st.lists(chat_like, min_size=1, max_size=5))
def test_random_chat_never_crashes_exact_counting(tmp_path, tokenizer_dir, rows):
    p = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    report = check_file(p, "chat-completion", tokenizer=str(tokenizer_dir), max_tokens=16)
    json.dumps(report.to_dict())
    assert report.stats.token_count_exact


@SETTINGS
@given(st.lists(escaped_lines, min_size=1, max_size=4))
def test_escapes_and_big_numbers_never_crash_exact_counting(tmp_path, tokenizer_dir, parts):
    # JSON escapes that Python accepts but Unicode does not (lone surrogates), and integers beyond 64 bits
    p = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    lines = [
        '{"messages": [{"role": "user", "content": %s}, {"role": "assistant", "content": "a"}], "x": [%s]}'
        % (vals[0] if vals else '"q"', ", ".join(vals))
        for vals in parts
    ]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = check_file(p, "chat-completion", tokenizer=str(tokenizer_dir))
    json.dumps(report.to_dict())
