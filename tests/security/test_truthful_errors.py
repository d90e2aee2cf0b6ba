"""Values that cannot work are refused by validate/plan (exit 2, the spec's line and field) before anything runs, and
the data checks tell the truth about line endings, NUL bytes and a blank last line. Ends with a fuzz test: generated
specs and data through validate, plan and data check give exit 0 or 2, never a traceback."""

from __future__ import annotations

import json
import resource
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROW = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})


def _write(tmp_path, body: str, name: str = "spec.yaml"):
    (tmp_path / "train.jsonl").write_text("".join(ROW.replace("hi", f"hi {i}") + "\n" for i in range(12)))
    p = tmp_path / name
    p.write_text("name: demo\n" + body)
    return p


REFUSED = [
    (
        "epochs-bool",
        "model: tiny-phi3\ndata: {train: train.jsonl}\nhyperparameters: {epochs: true}\n",
        4,
        "hyperparameters.epochs",
        "boolean",
    ),
    (
        "stage-bool",
        "model: tiny-phi3\ndata: {train: train.jsonl}\ncompute: {deepspeed: {stage: true}}\n",
        4,
        "compute.deepspeed.stage",
        "boolean",
    ),
    (
        "seed-64bit",
        "model: tiny-phi3\ndata: {train: train.jsonl}\nhyperparameters: {seed: 4294967296}\n",
        4,
        "hyperparameters.seed",
        "4294967295",
    ),
    (
        "nan-lr",
        "model: tiny-phi3\ndata: {train: train.jsonl}\nhyperparameters: {learning_rate: .nan}\n",
        4,
        "hyperparameters.learning_rate",
        "not a number",
    ),
    ("bad-azureml", "model: tiny-phi3\ndata: {train: 'azureml://datastores//paths/'}\n", 3, "data.train", "azureml://"),
    (
        "web-url",
        "model: tiny-phi3\ndata: {train: 'https://example.com/train.jsonl'}\n",
        3,
        "data.train",
        "Azure Storage",
    ),
    (
        "http-storage",
        "model: tiny-phi3\ndata: {train: 'http://acct.blob.core.windows.net/c/t.jsonl'}\n",
        3,
        "data.train",
        "https",
    ),
    ("unknown-model", "model: phi-9-ultra\ndata: {train: train.jsonl}\n", 2, "model", "unknown model"),
    ("not-a-model-dir", "model: /etc\ndata: {train: train.jsonl}\n", 2, "model", "not a model directory"),
]


@pytest.mark.parametrize("case,body,line,field,words", REFUSED, ids=[c[0] for c in REFUSED])
def test_values_that_cannot_work_name_their_line(run_cli, tmp_path, case, body, line, field, words):
    path = _write(tmp_path, body)
    for args in (["validate", str(path)], ["plan", str(path), "-b", "local"]):
        r = run_cli(*args, "--output", "json")
        assert r.code == 2, r.text
        doc = json.loads(r.out)
        hit = [p for p in doc["problems"] if p.get("field") == field]
        assert hit and hit[0]["line"] == line, doc
        assert words.lower() in json.dumps(doc).lower()


BACKEND_REFUSED = [
    (
        "modules",
        "model: tiny-phi3\ndata: {train: train.jsonl}\nlora: {target_modules: [q_proj, o_proj]}\n",
        "local",
        "lora.target_modules",
        4,
        "no module named q_proj",
    ),
    (
        "cloud-data-local",
        "model: tiny-phi3\ndata: {train: 'azureml://datastores/blobs/paths/t.jsonl'}\n",
        "local",
        "data.train",
        3,
        "local files",
    ),
    (
        "processes",
        "model: tiny-phi3\ndata: {train: train.jsonl}\nlocal: {num_processes: 64}\n",
        "local",
        "local.num_processes",
        4,
        "cores",
    ),
    ("directory-data", "model: tiny-phi3\ndata: {train: sub}\n", "local", "data.train", 3, "a directory"),
]


@pytest.mark.parametrize("case,body,backend,field,line,words", BACKEND_REFUSED, ids=[c[0] for c in BACKEND_REFUSED])
def test_backend_decided_problems_name_the_spec_line_and_field(
    run_cli, tmp_path, case, body, backend, field, line, words
):
    (tmp_path / "sub").mkdir()
    path = _write(tmp_path, body)
    for args in (["validate", str(path), "-b", backend], ["submit", str(path), "-b", backend]):
        r = run_cli(*args, "--output", "json")
        assert r.code == 2, r.text
        doc = json.loads(r.out)
        hit = [p for p in doc["problems"] if p.get("field") == field]
        assert hit and hit[0]["line"] == line, doc
        assert words in json.dumps(doc)


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
@pytest.mark.parametrize("rows", [1, 12, 3000])
def test_a_blank_last_line_is_valid(run_cli, tmp_path, ending, rows):
    p = tmp_path / "d.jsonl"
    body = "".join(ROW.replace("hi", f"hi {i}") + ending for i in range(rows)).encode()
    p.write_bytes(body + ending.encode())
    r = run_cli("data", "check", str(p), "--task", "chat-completion", "--output", "json")
    assert r.code == 0, r.text
    p.write_bytes(body + ending.encode() * 2)  # more than one is reported, as blank lines inside are
    r = run_cli("data", "check", str(p), "--task", "chat-completion")
    assert r.code == 2 and "blank" in r.text


def test_a_blank_line_inside_the_file_is_still_an_error(run_cli, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(ROW + "\n\n" + ROW.replace("hi", "yo") + "\n")
    r = run_cli("data", "check", str(p), "--task", "chat-completion")
    assert r.code == 2 and "blank" in r.text


def test_a_nul_byte_is_reported_with_its_line(run_cli, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes((ROW + "\n" + ROW + "\n").encode() + b'{"messages": "\x00"}\n')
    r = run_cli("data", "check", str(p), "--task", "chat-completion", "--output", "json")
    assert r.code == 2
    assert "line 3" in r.out and '"line": 3' in r.out.replace(" ", "").replace('"line":3', '"line": 3')


def test_cr_only_line_endings_are_named(run_cli, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes("".join(ROW.replace("hi", f"hi {i}") + "\r" for i in range(5)).encode())
    r = run_cli("data", "check", str(p), "--task", "chat-completion")
    assert r.code == 2 and "CR only" in r.text


# --- fuzz: generated specs and data through validate, plan and data check --------------------------------------

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "tiny-phi3",
            "phi-4-mini-instruct",
            "lora",
            "qlora",
            "chat-completion",
            "train.jsonl",
            "../x",
            "/dev/zero",
            "azureml://datastores/x/paths/y",
            "${HOME}",
            "*a",
        ]
    ),
)
_value = st.recursive(
    _scalar,
    lambda c: st.one_of(
        st.lists(c, max_size=4), st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=12), c, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "name",
        "model",
        "task",
        "data",
        "method",
        "hyperparameters",
        "lora",
        "compute",
        "tracking",
        "tags",
        "local",
        "mock",
        "description",
        "output",
        "azure",
        "extra",
    ]
)
_spec_doc = st.dictionaries(_keys, _value, max_size=8)
_line = st.one_of(
    st.just(ROW),
    st.text(max_size=60),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.just(""),
    st.just("{}"),
    st.just('{"messages": []}'),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=_spec_doc,
    raw=st.text(max_size=200),
    lines=st.lists(_line, max_size=8),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_fuzz_validate_plan_and_data_check_exit_0_or_2_without_a_traceback(run_cli, tmp_path, doc, raw, lines, ending):
    (tmp_path / "train.jsonl").write_bytes(ending.join(lines).encode("utf-8", "surrogatepass"))
    spec = tmp_path / "fuzz.yaml"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for text in (
        json.dumps(doc, default=str),
        json.dumps({**doc, "name": "fuzz", "data": {"train": "train.jsonl"}, "model": "tiny-phi3"}, default=str),
        raw,
    ):
        spec.write_text(text)
        for args in (["validate", str(spec)], ["plan", str(spec), "-b", "local", "--output", "json"]):
            r = run_cli(*args)
            assert r.code in (0, 2), (args, text, r.text)
            assert "Traceback" not in r.text
    r = run_cli("data", "check", str(tmp_path / "train.jsonl"), "--task", "chat-completion")
    assert r.code in (0, 2) and "Traceback" not in r.text, r.text
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 300  # MB
