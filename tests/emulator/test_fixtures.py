"""Azure's recorded answers served by the emulator, and azft read through them as a user runs it.

The fixtures (``azft/emulator/fixtures/*.yaml``) are written from Azure/azure-sdk-assets recordings and
Azure/azure-rest-api-specs examples; each names its source.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from azft.emulator import fixtures

CHAT = [
    {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": f"{i + i}."}]}
    for i in range(10)
]


@pytest.mark.parametrize("name", fixtures.names())
def test_every_fixture_names_its_source_and_is_well_formed(name):
    text = (Path(fixtures.__file__).parent / f"{name}.yaml").read_text()
    assert text.startswith("# Source: Azure/"), name
    doc = fixtures.load(name)
    assert doc["route"] in ("jobs.put", "jobs.get") and isinstance(doc["response"]["status"], int)


def test_the_recorded_request_passes_the_contract_and_gets_azures_400(emulator, ml_client):
    from azft.emulator.contract import Contract

    doc = fixtures.load("maas_model_not_supported")
    assert Contract.load().violations("JobBase", doc["request"]["body"]) == []
    emulator.serve_fixture("maas_model_not_supported", model="Meta-Llama-3-8B")
    from tests.backends.test_strict_contract import _send

    status, body = _send(
        emulator,
        "PUT",
        emulator.workspace_id + "/jobs/llama",
        {"api-version": "2024-10-01-preview"},
        doc["request"]["body"],
    )
    assert status == 400
    assert body["error"]["message"] == "Meta-Llama-3-8B : Serverless FineTuning not supported in eastus2."
    inner = [a for a in body["error"]["additionalInfo"] if a["type"] == "InnerError"]
    assert inner[0]["info"]["value"]["code"] == "ModelNotSupportedByMaaS"
    assert not emulator.jobs


def _azft() -> list[str]:
    script = Path(sys.executable).parent / "azft"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "azft.cli"]


@pytest.fixture
def user(tmp_path, emulator):
    """Run azft as a user does, in a new process, with the workspace pointed at the emulator."""
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CHAT))
    (tmp_path / "spec.yaml").write_text(
        "name: fx-demo\nmodel: phi-4-mini-instruct\ntask: chat-completion\ndata: {train: train.jsonl}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZUREML_", "AZFT_", "MLFLOW_"))}
    env.update(
        emulator.env(),
        AZFT_HOME=str(tmp_path / "home"),
        CI="true",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*_azft(), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    return run


def test_submit_refused_by_azure_exits_4_with_the_specific_code_message_hint_and_request_id(emulator, user):
    served = emulator.serve_fixture("maas_model_not_supported", model="Phi-4-mini-instruct")
    r = user("submit", "spec.yaml", "--backend", "maas")
    out = r.stdout + r.stderr
    assert r.returncode == 4, out
    assert "ModelNotSupportedByMaaS" in out
    assert "Serverless FineTuning not supported in eastus2" in out
    assert "Traceback" not in out
    from azft.azure.errors import HINTS

    assert HINTS["ModelNotSupportedByMaaS"].split(".")[0] in out
    assert "request id " in out
    put = emulator.requests_to(r"/jobs/[^/]+$", "PUT")[-1]
    assert put.status == 400 and served.hits == 1
    assert not emulator.jobs


def test_jobs_azft_did_not_create_are_read_as_azure_returns_them(emulator, user):
    emulator.serve_fixture("maap_finetuning_job_running", name="llama-maap")
    emulator.serve_fixture("finetuning_job_created", name="llama-created")
    r = user("status", "llama-maap", "--backend", "maas", "--output", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    info = json.loads(r.stdout)
    assert info["status"].lower() == "running"
    # Azure's managed job on the customer's compute, as Azure returned it: its instance types and Azure's job kind
    assert info["extra"]["instance_types"] == ["Standard_NC96ads_A100_v4", "Standard_E4s_v3"]
    assert info["extra"]["finetuning_job_type"] == "MaaP"
    r = user("status", "llama-maap", "--backend", "maas")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "runs on: instance types Standard_NC96ads_A100_v4, Standard_E4s_v3" in r.stdout
    assert "Azure fine-tuning job (MaaP)" in r.stdout
    r = user("status", "llama-created", "--backend", "maas", "--output", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["status"].lower() == "created"  # exists, not started: never terminal
