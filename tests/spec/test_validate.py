"""`azft validate`: every problem at once, with file, line, field and a hint; exit 2; never a traceback."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

GOOD = """\
name: support-bot
model: phi-4-mini-instruct
task: chat-completion
data:
  train: data/chat_train.jsonl
  validation: data/chat_val.jsonl
method: lora
hyperparameters:
  epochs: 2
  learning_rate: 1.0e-5
  batch_size: 4
lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: [qkv_proj, o_proj]}
tracking: {experiment: support-bot}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    return tmp_path


def write(workdir: Path, text: str, name: str = "spec.yaml") -> str:
    p = workdir / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_valid_spec_prints_one_line_summary(run_cli, workdir):
    r = run_cli("validate", write(workdir, GOOD))
    assert r.code == 0, r.text
    assert "valid" in r.out and "support-bot" in r.out and "phi-4-mini-instruct" in r.out
    assert len(r.out.strip().splitlines()) == 1


def test_issue_example_typo_names_line_and_suggestion(run_cli, workdir):
    spec = GOOD.replace("  learning_rate: 1.0e-5", "  lerning_rate: 1.0e-5")
    r = run_cli("validate", write(workdir, spec))
    assert r.code == 2
    assert "spec.yaml:10" in r.err
    assert "unknown key `lerning_rate`" in r.err
    assert "did you mean `learning_rate`?" in r.err
    assert "Traceback" not in r.text


# (case id, spec text transform, expected line, expected words in the message)
MALFORMED = [
    ("yaml-syntax-unclosed-bracket", lambda s: s.replace("[qkv_proj, o_proj]", "[qkv_proj, o_proj"), 12, ["YAML"]),
    ("yaml-tab-indent", lambda s: s.replace("  epochs: 2", "\tepochs: 2"), 9, ["YAML"]),
    ("yaml-duplicate-key", lambda s: s.replace("method: lora", "method: lora\nmethod: dora"), 8, ["duplicate"]),
    ("not-a-mapping", lambda s: "- just\n- a list\n", 1, ["mapping"]),
    ("empty-file", lambda s: "", 1, ["empty"]),
    (
        "unknown-top-level-key",
        lambda s: s.replace("method: lora", "methd: lora"),
        7,
        ["methd", "did you mean `method`"],
    ),
    ("unknown-nested-key", lambda s: s.replace("r: 16", "rank: 16"), 12, ["rank"]),
    ("missing-model", lambda s: s.replace("model: phi-4-mini-instruct\n", ""), 1, ["model", "required"]),
    ("missing-train", lambda s: s.replace("  train: data/chat_train.jsonl\n", ""), 4, ["train", "required"]),
    ("wrong-type-epochs", lambda s: s.replace("epochs: 2", "epochs: two"), 9, ["epochs", "integer"]),
    ("negative-learning-rate", lambda s: s.replace("1.0e-5", "-0.1"), 10, ["learning_rate", "greater than 0"]),
    ("zero-batch", lambda s: s.replace("batch_size: 4", "batch_size: 0"), 11, ["batch_size"]),
    (
        "bad-task",
        lambda s: s.replace("task: chat-completion", "task: chat-compleation"),
        3,
        ["task", "chat-completion"],
    ),
    ("bad-method", lambda s: s.replace("method: lora", "method: lorra"), 7, ["method", "did you mean 'lora'"]),
    ("bad-name", lambda s: s.replace("name: support-bot", "name: Support Bot!"), 1, ["name", "lowercase"]),
    ("zero-stage-4", lambda s: s + "compute: {deepspeed: {stage: 4}}\n", 14, ["stage"]),
    (
        "param-offload-without-zero3",
        lambda s: s + "compute:\n  deepspeed: {stage: 2, offload: parameters}\n",
        15,
        ["parameter offload needs ZeRO stage 3"],
    ),
    (
        "validation-and-split",
        lambda s: s.replace(
            "  validation: data/chat_val.jsonl", "  validation: data/chat_val.jsonl\n  validation_split: 0.1"
        ),
        4,
        ["either `validation` or `validation_split`"],
    ),
    (
        "split-too-large",
        lambda s: s.replace("  validation: data/chat_val.jsonl", "  validation_split: 0.9"),
        6,
        ["validation_split"],
    ),
    (
        "secret-key-in-azure",
        lambda s: s + "azure:\n  workspace: ws\n  client_secret: s3cr3t-value\n",
        16,
        ["looks like a secret", "az login"],
    ),
    (
        "sas-token-value",
        lambda s: s.replace(
            "data/chat_val.jsonl",
            "https://acct.blob.core.windows.net/c/v.jsonl?sv=2022&sig=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789%2B",
        ),
        6,
        ["SAS"],
    ),
    (
        "jwt-in-tags",
        lambda s: s + "tags: {auth: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijkl}\n",
        14,
        ["JSON Web Token"],
    ),
    (
        "connection-string",
        lambda s: (
            s + 'tags:\n  store: "DefaultEndpointsProtocol=https;AccountName=a;AccountKey='
            'aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8=;"\n'
        ),
        15,
        ["storage account key"],
    ),
    ("env-var-missing", lambda s: s + "azure:\n  workspace: ${AZFT_TEST_UNSET_VAR}\n", 15, ["AZFT_TEST_UNSET_VAR"]),
    ("env-var-secret", lambda s: s + "azure:\n  workspace: ${AZURE_CLIENT_SECRET}\n", 15, ["secret"]),
    ("tags-not-strings", lambda s: s + "tags: [a, b]\n", 14, ["tags"]),
    ("target-modules-empty", lambda s: s.replace("[qkv_proj, o_proj]", "[]"), 12, ["target_modules"]),
    (
        "unknown-model",
        lambda s: s.replace("phi-4-mini-instruct", "phi-4-mni-instruct"),
        None,
        ["unknown model", "did you mean"],
    ),
    (
        "data-file-missing",
        lambda s: s.replace("data/chat_train.jsonl", "data/nope.jsonl"),
        5,
        ["does not exist", "data.train"],
    ),
    ("bad-cluster-name", lambda s: s + "compute: {cluster: 'my cluster!'}\n", 14, ["cluster"]),
]


@pytest.mark.parametrize("case,transform,line,words", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_specs(run_cli, workdir, monkeypatch, case, transform, line, words):
    monkeypatch.delenv("AZFT_TEST_UNSET_VAR", raising=False)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "do-not-print-me")
    path = write(workdir, transform(GOOD))
    r = run_cli("validate", path)
    assert r.code == 2, r.text
    assert "Traceback" not in r.text
    assert "do-not-print-me" not in r.text
    if line is not None:
        assert f"spec.yaml:{line}" in r.err, r.err
    for w in words:
        assert w.lower() in r.err.lower(), (w, r.err)


def test_every_problem_reported_at_once(run_cli, workdir):
    spec = GOOD.replace("epochs: 2", "epochs: -1").replace("method: lora", "method: lorra").replace("r: 16", "rank: 16")
    r = run_cli("validate", write(workdir, spec))
    assert r.code == 2
    assert "3 problems" in r.err
    for line in (7, 9, 12):
        assert f"spec.yaml:{line}" in r.err


def test_secret_value_never_echoed(run_cli, workdir):
    secret = (
        "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29y=="
    )
    secret = secret[:86] + "=="
    r = run_cli("validate", write(workdir, GOOD + f'tags: {{k: "{secret}"}}\n'))
    assert r.code == 2
    assert secret not in r.text


def test_env_interpolation_for_workspace_ids(run_cli, workdir, monkeypatch):
    monkeypatch.setenv("MY_SUB", "11111111-2222-3333-4444-555555555555")
    path = write(workdir, GOOD + "azure:\n  subscription_id: ${MY_SUB}\n  workspace: ${MY_WS:-default-ws}\n")
    from azft.spec import load_spec

    spec = load_spec(path)
    assert spec.azure.subscription_id == "11111111-2222-3333-4444-555555555555"
    assert spec.azure.workspace == "default-ws"


def test_missing_file_and_directory(run_cli, workdir):
    r = run_cli("validate", str(workdir / "nope.yaml"))
    assert r.code == 2 and "no such file" in r.err
    r = run_cli("validate", str(workdir))
    assert r.code == 2 and "directory" in r.err


def test_json_output_for_ci(run_cli, workdir):
    r = run_cli("validate", write(workdir, GOOD.replace("epochs: 2", "epochs: zero")), "--output", "json")
    assert r.code == 2
    doc = json.loads(r.out)
    assert doc["ok"] is False and doc["exit_code"] == 2
    assert doc["problems"][0]["line"] == 9
    assert doc["problems"][0]["field"] == "hyperparameters.epochs"


def test_bad_data_fails_validate_with_spec_line(run_cli, workdir):
    (workdir / "data" / "bad.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    r = run_cli("validate", write(workdir, GOOD.replace("data/chat_train.jsonl", "data/bad.jsonl")))
    assert r.code == 2
    assert "spec.yaml:5" in r.err and "data.train" in r.err


def test_examples_are_valid(run_cli):
    for spec in sorted(EXAMPLES.glob("*.yaml")):
        if spec.name == "prices.yaml":
            continue
        r = run_cli("validate", str(spec))
        assert r.code == 0, (spec, r.text)


def test_schema_is_current_and_describes_fields(run_cli):
    r = run_cli("schema")
    assert r.code == 0
    schema = json.loads(r.out)
    assert "hyperparameters" in schema["properties"]
    shipped = json.loads((EXAMPLES.parent / "schema" / "jobspec.schema.json").read_text())
    assert shipped == schema, "schema/jobspec.schema.json is stale: run `azft schema --out schema/jobspec.schema.json`"


def test_schema_rejects_what_validate_rejects():
    """Editors using the JSON Schema flag unknown keys and bad enums, like `azft validate` does."""
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    from azft.spec import json_schema

    schema = json_schema()
    good = yaml.safe_load(GOOD)
    jsonschema.validate(good, schema)
    for bad in ({**good, "methd": "lora"}, {**good, "method": "lorra"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_unexpected_errors_are_one_line_with_debug_hint(run_cli, workdir, monkeypatch):
    import azft.spec

    def boom(*a, **k):
        raise RuntimeError("internal failure")

    monkeypatch.setattr(azft.spec, "load_spec", boom)
    r = run_cli("validate", write(workdir, GOOD))
    assert r.code != 0
    assert "Traceback" not in r.text
    assert "--debug" in r.err


def test_spec_reference_is_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", EXAMPLES.parent / "scripts" / "gen_spec_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    current = (EXAMPLES.parent / "docs" / "spec-reference.md").read_text()
    assert current == mod.render(), "docs/spec-reference.md is stale: run `python scripts/gen_spec_reference.py`"


def test_init_writes_a_spec_that_validates(run_cli, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    r = run_cli("init", "azft.yaml", "--name", "my-bot", "--train", "data/chat_train.jsonl")
    assert r.code == 0, r.text
    text = (workdir / "azft.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=.azft-schema.json")
    assert json.loads((workdir / ".azft-schema.json").read_text())["title"] == "azft job spec"
    assert run_cli("validate", "azft.yaml").code == 0
    again = run_cli("init", "azft.yaml")
    assert again.code == 2 and "--force" in again.err


def test_fault_flag_is_validated(run_cli, workdir):
    path = write(workdir, GOOD)
    r = run_cli("submit", path, "--backend", "mock", "--fault", "job_error:state=Sleeping")
    assert r.code == 2 and "state" in r.err and "Traceback" not in r.text
    r = run_cli("submit", path, "--backend", "local", "--fault", "job_error")
    assert r.code == 2 and "mock only" in r.err
