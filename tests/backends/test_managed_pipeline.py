"""``compute.pipeline: azure``: Azure's managed fine-tuning job (the serverless ``FineTuningJob``) on the user's
cluster or on instance types, with a queue tier. Planned, rendered (``load_job`` reads the YAML back), submitted
through the real MLClient to the strict emulator, and followed with status / wait / logs / cancel as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_strict_contract import _assert_each_removal_refused, _send

PHI4 = "phi-4"


def _spec(make_spec, name="managed", model=PHI4, **compute):
    return make_spec(name=name, model=model, compute={"pipeline": "azure", **compute})


def test_plan_on_a_cluster_renders_the_job_azure_ai_ml_loads_back(make_spec, plan_for, tmp_path):
    from azure.ai.ml import load_job
    from ruamel.yaml import YAML

    plan = plan_for(
        _spec(make_spec, cluster="gpu-a100", instance_type="Standard_NC24ads_A100_v4", job_tier="Standard"), "maap"
    )
    from azft.backends.maap import MaapBackend

    rendered = MaapBackend().render(plan)
    assert rendered["type"] == "finetuning" and rendered["compute"].endswith("gpu-a100")
    assert rendered["queue_settings"]["job_tier"].lower() == "standard"
    path = tmp_path / "job.yml"
    with open(path, "w") as f:
        YAML().dump(rendered, f)
    job = load_job(source=str(path))
    assert type(job).__name__ == "CustomModelFineTuningJob"
    assert job.compute.endswith("gpu-a100") and job.queue_settings.job_tier.lower() == "standard"
    assert job.training_data.path.startswith("azureml://datastores/workspaceblobstore/paths/azft/data/")


def test_plan_on_instance_types_needs_no_cluster(make_spec, plan_for):
    from azft.azure.jobs import build_job

    plan = plan_for(
        _spec(make_spec, instance_types=["Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4"], job_tier="Spot"),
        "maap",
    )
    job = build_job(plan)
    assert job.compute is None
    assert job.resources.instance_types == ["Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4"]
    assert job.queue_settings.job_tier == "Spot"


@pytest.mark.parametrize(
    "sections,reason",
    [
        ({"compute": {"pipeline": "azure", "instance_types": ["Standard_NC6s_v3"]}}, "finetuneComputes"),
        (
            {"compute": {"pipeline": "azure", "cluster": "gpu", "instance_types": ["Standard_NC24ads_A100_v4"]}},
            "not both",
        ),
        ({"compute": {"pipeline": "azure", "cluster": "gpu"}, "method": "qlora"}, "no QLORA"),
        ({"compute": {"pipeline": "azure", "cluster": "gpu"}, "task": "summarization"}, "tasks"),
        ({"compute": {"pipeline": "azft", "cluster": "gpu", "job_tier": "Spot"}}, "managed fine-tuning job"),
        ({"compute": {"pipeline": "azure"}}, "needs a compute cluster"),
    ],
    ids=["off-registry-list", "cluster-and-types", "qlora", "task", "tier-elsewhere", "no-compute"],
)
def test_plan_refuses_what_azure_would_refuse(make_spec, sections, reason):
    from azft import api

    plan = api.plan(make_spec(name="refused", model=PHI4, **sections), "maap")
    assert not plan.ok
    assert any(reason in r for r in plan.verdict.reasons), plan.verdict.reasons


def test_values_the_managed_job_has_no_place_for_are_named(make_spec):
    from azft import api

    plan = api.plan(
        make_spec(
            name="named",
            model=PHI4,
            hyperparameters={"warmup_ratio": 0.1, "epochs": 2},
            compute={"pipeline": "azure", "cluster": "gpu", "deepspeed": {"stage": 2}},
        ),
        "maap",
    )
    assert plan.ok, plan.verdict.reasons
    warning = next(w for w in plan.verdict.warnings if "Not sent" in w)
    assert "hyperparameters.warmup_ratio" in warning and "compute.deepspeed" in warning
    assert "hyperparameters.epochs" not in warning


def test_submit_through_the_strict_emulator_is_a_maap_finetuning_job(emulator, azure_backend, make_spec, plan_for):
    backend = azure_backend("maap", create_missing_cluster=True)
    job = backend.submit(
        plan_for(
            _spec(
                make_spec,
                cluster="gpu-a100",
                instance_type="Standard_NC24ads_A100_v4",
                create_cluster=True,
                job_tier="Premium",
            ),
            "maap",
        )
    )
    puts = emulator.requests_to(r"/jobs/[^/]+$", "PUT")
    assert [r.status for r in puts] == [201]
    props = puts[0].body["properties"]
    assert props["jobType"] == "FineTuning" and props["computeId"] == "gpu-a100"
    assert props["queueSettings"] == {"jobTier": "Premium"}
    assert (
        props["fineTuningDetails"]["taskType"] == "chatCompletion"
    )  # as the SDK sends it (recordings: "textCompletion")
    assert "Standard_NC24ads_A100_v4" == emulator.computes["gpu-a100"]["properties"]["properties"]["vmSize"]
    info = job.info()
    assert info.extra["finetuning_job_type"] == "MaaP"
    assert info.extra["compute"] == "gpu-a100" and info.extra["job_tier"].lower() == "premium"
    # the recorded job request: every required property removed is refused, one at a time
    assert _assert_each_removal_refused(emulator, puts) >= 8
    job.cancel()
    assert job.info().status.value in ("CancelRequested", "Canceled")


def test_the_strict_emulator_refuses_a_queue_tier_azure_does_not_have(emulator):
    from azft.emulator.fixtures import load

    body = json.loads(json.dumps(load("maas_model_not_supported")["request"]["body"]))
    body["properties"]["computeId"] = "gpu-a100"
    body["properties"]["queueSettings"] = {"jobTier": "Gold"}
    status, answer = _send(
        emulator, "PUT", emulator.workspace_id + "/jobs/tier", {"api-version": "2024-10-01-preview"}, body
    )
    assert status == 400 and "properties.queueSettings.jobTier" in [d["target"] for d in answer["error"]["details"]]
    body["properties"]["queueSettings"] = {"jobTier": "Spot"}
    status, answer = _send(
        emulator, "PUT", emulator.workspace_id + "/jobs/tier", {"api-version": "2024-10-01-preview"}, body
    )
    assert status == 201, answer
    assert answer["properties"]["properties"]["_fineTuningJobType"] == "MaaP"


def _azft() -> list[str]:
    script = Path(sys.executable).parent / "azft"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "azft.cli"]


def test_the_user_path_on_the_mock_backend(tmp_path):
    """plan → submit → status → wait → logs, each a new process, as the README shows them."""
    rows = [
        {"messages": [{"role": "user", "content": f"{i}?"}, {"role": "assistant", "content": f"{i}."}]}
        for i in range(8)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "spec.yaml").write_text(
        "name: managed-demo\nmodel: phi-4\ntask: chat-completion\ndata: {train: train.jsonl}\n"
        "compute: {pipeline: azure, instance_types: [Standard_NC24ads_A100_v4], job_tier: Standard}\n"
        "mock: {target: maap, seconds_per_state: 0}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZUREML_", "AZFT_", "MLFLOW_"))}
    env.update(AZFT_HOME=str(tmp_path / "home"), CI="true", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")

    def run(*args):
        r = subprocess.run([*_azft(), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert "Traceback" not in r.stdout + r.stderr
        return r

    r = run("plan", "spec.yaml", "-b", "mock", "--output", "yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "instance_types" in r.stdout and "Standard_NC24ads_A100_v4" in r.stdout
    r = run("submit", "spec.yaml", "-b", "mock", "--output", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    name = json.loads(r.stdout)["job_name"]
    r = run("status", name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "instance types Standard_NC24ads_A100_v4" in r.stdout and "tier Standard" in r.stdout
    assert "MaaP" in r.stdout
    r = run("wait", name, "--output", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("logs", name)
    assert r.returncode == 0, r.stdout + r.stderr
