"""Secrets in a spec are refused wherever they appear, and never reach an output stream or a file under AZFT_HOME.

Each credential shape is put in each place a spec can hold free text; then `validate`, `plan --output json|yaml` and
`submit --backend mock` run, and stdout, stderr and every file under AZFT_HOME are searched for it."""

from __future__ import annotations

import base64
import json
import random
import stat
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azft.redact import find_secret, redact, redact_text

_rng = random.Random(13)


def _chars(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _jwt() -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{enc({'alg': 'RS256', 'typ': 'JWT'})}.{enc({'sub': _chars(12), 'aud': 'x'})}.{_chars(43)}"


def _account_key() -> str:
    return base64.b64encode(bytes(_rng.randrange(256) for _ in range(64))).decode()


# (name, the secret part that must never be shown, the text a user pastes)
def _shapes() -> list[tuple[str, str, str]]:
    key = _account_key()
    sig = _chars(40)
    pw = "Pw" + _chars(12) + "7"
    return [
        ("github", t := "ghp_" + _chars(36), t),
        ("github-fine-grained", t := "github_pat_" + _chars(60, string.ascii_letters + string.digits + "_"), t),
        ("hugging-face", t := "hf_" + _chars(34), t),
        ("aws", t := "AKIA" + _chars(16, string.ascii_uppercase + string.digits), t),
        ("jwt", t := _jwt(), t),
        ("account-key", key, key),
        ("connection-string", key, f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};"),
        ("sas-url", sig, f"https://acct.blob.core.windows.net/data/train.jsonl?sv=2022-11-02&sr=b&sig={sig}"),
        ("url-password", pw, f"postgresql://mlflow:{pw}@db.example.com:5432/mlflow"),
        ("entra-secret", t := _chars(3) + "8Q~" + _chars(34, string.ascii_letters + string.digits + "_-"), t),
        ("keyword-password", pw, f"the password is {pw}"),
        ("openai", t := "sk-" + _chars(40), t),
    ]


SHAPES = _shapes()


def _places(text: str) -> dict[str, dict]:
    """Spec documents (as JSON, which is YAML) holding ``text`` in each free-text place."""
    base = {"name": "leak", "model": "tiny-phi3", "data": {"train": "train.jsonl"}}
    return {
        "description": {**base, "description": f"notes: {text} (end)"},
        "tag-value": {**base, "tags": {"team": text}},
        "tag-key": {**base, "tags": {text: "x"}},
        "tracking-uri": {**base, "tracking": {"tracking_uri": text}},
        "experiment": {**base, "tracking": {"experiment": text}},
        "data-path": {**base, "data": {"train": "train.jsonl", "validation": text}},
        "model": {**base, "model": text},
        "workspace": {**base, "azure": {"workspace": text}},
        "secret-named-list": {**base, "azure": {"client_secret": [text]}},
        "lora-modules": {**base, "lora": {"target_modules": [text]}},
    }


def _grep_home(home, needle: str) -> list[str]:
    hits = []
    for p in home.rglob("*"):
        if p.is_file():
            try:
                if needle.encode() in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                continue
    return hits


@pytest.fixture
def spec_dir(tmp_path):
    (tmp_path / "train.jsonl").write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
            + "\n"
            for i in range(8)
        )
    )
    return tmp_path


@pytest.mark.parametrize("shape,secret,text", SHAPES, ids=[s[0] for s in SHAPES])
def test_each_secret_shape_in_each_place_is_refused_and_never_shown(run_cli, spec_dir, _azft_home, shape, secret, text):
    for place, doc in _places(text).items():
        path = spec_dir / f"{place}.yaml"
        path.write_text(json.dumps(doc, indent=1))
        runs = [
            run_cli("validate", str(path)),
            run_cli("plan", str(path), "--output", "json"),
            run_cli("plan", str(path), "-b", "mock", "--output", "yaml"),
            run_cli("submit", str(path), "-b", "mock", "--output", "json"),
        ]
        for r in runs:
            assert r.code == 2, (place, r.text)
            assert secret not in r.text, (place, r.text)
            assert "Traceback" not in r.text
        assert "secret" in runs[0].err.lower() or "holds" in runs[0].err.lower(), (place, runs[0].err)
    assert _grep_home(_azft_home, secret) == []


def test_an_env_value_that_fails_validation_is_not_echoed(run_cli, spec_dir, monkeypatch):
    monkeypatch.setenv("AZFT_EPOCHS", "hunter2-plain-not-a-number")
    path = spec_dir / "env.yaml"
    path.write_text(
        "name: leak\nmodel: tiny-phi3\ndata: {train: train.jsonl}\nhyperparameters:\n"
        "  epochs: ${AZFT_EPOCHS}\n  learning_rate: ${AZFT_EPOCHS}\n"
    )
    r = run_cli("validate", str(path))
    assert r.code == 2 and "hunter2" not in r.text
    assert "spec.yaml" not in r.text and "env.yaml:5" in r.err and "environment" in r.err


def test_a_secret_named_key_never_echoes_its_value_whatever_its_type(run_cli, spec_dir):
    for value in ('["plain-value-1"]', "{inner: plain-value-1}", "plain-value-1", "[[plain-value-1]]"):
        path = spec_dir / "named.yaml"
        path.write_text(f"name: leak\nmodel: tiny-phi3\ndata: {{train: train.jsonl}}\ntags:\n  api_key: {value}\n")
        r = run_cli("validate", str(path))
        assert r.code == 2 and "plain-value-1" not in r.text, r.text
        assert "named.yaml:5" in r.err


def test_state_files_are_private_and_never_hold_a_password(spec_dir, _azft_home):
    """A submit writes its state 0600, atomically; a tracking URI with a password is stored without it."""
    from azft.state import lookup_submission, record_submission

    path = spec_dir / "ok.yaml"
    path.write_text("name: ok\nmodel: phi-4-mini-instruct\ndata: {train: train.jsonl}\nmock: {seconds_per_state: 0}\n")
    import azft

    job = azft.submit(azft.plan(str(path), "mock"), track=False).name  # MLflow is not what this test is about
    pw = "Pw" + _chars(14) + "9"
    record_submission(job, tracking_uri=f"postgresql://user:{pw}@db.example.com/mlflow")
    assert lookup_submission(job)["tracking_uri"] == "postgresql://user:***@db.example.com/mlflow"
    assert _grep_home(_azft_home, pw) == []
    for name in ("submissions.json", "mock/state.json"):
        mode = stat.S_IMODE((_azft_home / ".azft" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    requests = list((_azft_home / ".azft" / "mock" / "jobs").rglob("requests.json"))
    assert requests and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in requests)


# --- the detector and the scrubber on their own, with generated surroundings -----------------------------------

_filler = st.text(alphabet=string.ascii_letters + " .,:;()-/", max_size=40)


@settings(max_examples=60, deadline=None)
@given(before=_filler, after=_filler, index=st.integers(0, len(SHAPES) - 1))
def test_a_secret_is_found_and_scrubbed_whatever_text_surrounds_it(before, after, index):
    _, secret, text = SHAPES[index]
    line = f"{before} {text} {after}"
    assert find_secret(line) is not None
    assert secret not in redact_text(line)
    assert secret not in json.dumps(redact({"k": [line], line: 1}))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            "max_tokens",
            "eos_token",
            "pad_token",
            "tokenizer",
            "key_name",
            "num_keys",
            "monkey",
            "learning_rate",
            "target_modules",
            "qkv_proj",
            "support-bot",
            "phi-4-mini-instruct",
        ]
    ),
    st.text(alphabet=string.ascii_lowercase + " -_", max_size=30),
)
def test_ordinary_settings_and_prose_are_not_secrets(key, prose):
    assert find_secret(f"{key}: {prose}") is None
    assert redact({key: 5}) == {key: 5}
