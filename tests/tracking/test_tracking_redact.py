"""Secrets never reach MLflow: the redaction rules on their own, then through a real (local) MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from azft.tracking import Tracker, redact
from azft.redact import is_secret_key, redact_text

JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyQGNvbnRvc28uY29tIn0.c2lnbmF0dXJlLXBhcnQtaGVyZQ"
SAS_URL = "https://acct.blob.core.windows.net/data/train.jsonl?sv=2022-11-02&ss=b&se=2026-12-01&sp=r&sig=AbCd%2BeF0123456789%3D"
ACCOUNT_KEY = "Zm9v" * 21 + "YQ=="  # 86 base64 chars + "==", the shape of a storage account key
CONN = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
HF_TOKEN = "hf_" + "a1B2" * 9
SECRET_VALUES = ["hunter2-password", JWT, "AbCd%2BeF0123456789%3D", ACCOUNT_KEY, HF_TOKEN]
# secrets recognisable by their shape, wherever they appear
SHAPED = [SAS_URL, CONN, f"Bearer {JWT}", JWT, f"token in text {HF_TOKEN} here", ACCOUNT_KEY]


def test_secret_key_names_are_recognised_but_token_counts_are_not():
    for key in (
        "api_key",
        "client_secret",
        "hfToken",
        "HF_TOKEN",
        "storage.sas",
        "password",
        "AZURE_STORAGE_CONNECTION_STRING",
        "connectionString",
        "credential",
    ):
        assert is_secret_key(key), key
    for key in (
        "max_tokens",
        "total_tokens",
        "tokenizer",
        "eos_token",
        "pad_token",
        "learning_rate",
        "monkey",
        "tokens_per_example",
    ):
        assert not is_secret_key(key), key


def test_values_that_look_secret_are_scrubbed_in_place():
    out = redact(
        {
            "train": SAS_URL,
            "conn": CONN,
            "header": f"Bearer {JWT}",
            "note": f"use {HF_TOKEN} for the hub",
            "count": 12,
            "use_auth_token": False,
        }
    )
    assert out["train"].startswith("https://acct.blob.core.windows.net/data/train.jsonl?sv=2022-11-02")
    assert "sig=***" in out["train"] and "AbCd" not in out["train"]
    assert "AccountName=acct" in out["conn"] and ACCOUNT_KEY not in out["conn"]
    assert JWT not in out["header"]
    assert "hf_a1B2" not in out["note"]
    assert out["count"] == 12 and out["use_auth_token"] is False


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.one_of(st.integers(), st.text(alphabet="abc xyz_-/.", max_size=20), st.sampled_from(SHAPED)),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            # a plain password has no shape: it is recognised by the name it is stored under
            st.fixed_dictionaries({"password": st.just("hunter2-password"), "other": children}),
            st.dictionaries(
                st.sampled_from(["name", "epochs", "password", "api_key", "data", "nested", "sas", "max_tokens"]),
                children,
                max_size=4,
            ),
        ),
        max_leaves=12,
    )
)
def test_no_secret_survives_anywhere_in_a_nested_document(doc):
    text = json.dumps(redact(doc))
    for secret in SECRET_VALUES:
        assert secret not in text


def test_secrets_never_reach_params_tags_or_artifacts(workdir: Path, make_spec):
    spec = make_spec(
        data={"train": SAS_URL, "validation": None},
        azure={
            "subscription_id": "00000000-0000-0000-0000-000000000000",
            "client_secret": "hunter2-password",
            "storage_connection_string": CONN,
        },
        tags={"owner": "team-a", "ci_token": JWT},
    )
    plan = {"backend": "mock", "env": {"HF_TOKEN": HF_TOKEN, "AUTH": f"Bearer {JWT}"}}
    tracker = Tracker(None, "secrets")
    run_id = tracker.start_submission(
        spec=spec,
        plan=plan,
        data_report={"source": SAS_URL},
        backend="mock",
        job_name="job-secret",
        studio_url=None,
        tags={"requested_by": CONN},
    )
    log = workdir / "train.log"
    log.write_text(f"loading {SAS_URL}\npassword=hunter2-password\n")
    tracker.log_artifact(run_id, log)
    run = tracker.get_run(run_id)
    everything = json.dumps({"params": run.data.params, "tags": run.data.tags})
    for artifact in (workdir / ".azft" / "mlartifacts").rglob("*"):
        if artifact.is_file():
            everything += artifact.read_text(errors="replace")
    for secret in SECRET_VALUES:
        assert secret not in everything
    # the useful, non-secret parts are still there
    assert run.data.tags["owner"] == "team-a"
    assert run.data.params["data.train"].startswith("https://acct.blob.core.windows.net/data/train.jsonl")
    assert "sig=***" in redact_text(SAS_URL)
