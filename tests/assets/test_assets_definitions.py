"""Every component and pipeline loads with azure-ai-ml and passes its offline validation, as `az ml` would see it."""

from __future__ import annotations

import re
import warnings

import pytest
from asset_runner import REPO

COMPONENTS = sorted(p for p in (REPO / "components").glob("*/component.yml"))
PIPELINES = [REPO / "pipelines" / "finetune.yml", REPO / "pipelines" / "registry_chat_completion.yml"]
OWN_COMPONENTS = ["validate_data", "evaluate", "register_model"]


@pytest.fixture(scope="module")
def aml():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import azure.ai.ml as aml
    return aml


def load_job(aml, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return aml.load_job(source=str(path))


def test_every_component_of_the_issue_exists():
    names = {p.parent.name for p in COMPONENTS}
    assert {"validate_data", "finetune", "evaluate", "register_model"} <= names


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: p.parent.name)
def test_component_loads_and_validates(aml, path):
    component = aml.load_component(source=str(path))
    result = component._validate()
    assert result.passed, result.error_messages
    assert component.command and component.environment is not None


@pytest.mark.parametrize("name", OWN_COMPONENTS)
def test_component_environment_is_pinned(aml, name):
    component = aml.load_component(source=str(REPO / "components" / name / "component.yml"))
    env = component.environment
    assert ":latest" not in env.image and re.search(r":[\w.]+$", env.image), env.image
    pip = next(d["pip"] for d in env.conda_file["dependencies"] if isinstance(d, dict))
    unpinned = [req for req in pip if "==" not in req]
    assert not unpinned, f"{name}: unpinned requirements {unpinned}"


def test_validate_data_snapshot_carries_azft_checks(aml, tmp_path):
    """The step runs azft's own checks: the code Azure ML uploads contains the azft package, without caches."""
    from asset_runner import build_snapshot

    component = aml.load_component(source=str(REPO / "components" / "validate_data" / "component.yml"))
    snap = build_snapshot(component, tmp_path / "snap")
    assert (snap / "run.py").is_file()
    assert (snap / "azft" / "data" / "__init__.py").is_file()
    assert (snap / "azft" / "errors.py").read_bytes() == (REPO / "azft" / "errors.py").read_bytes()
    assert not list(snap.rglob("__pycache__"))


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_pipeline_loads_and_validates(aml, path):
    job = load_job(aml, path)
    result = job._validate()
    assert result.passed, result.error_messages
    job._to_rest_object()  # what `az ml job create` sends is buildable offline


def test_finetune_pipeline_runs_the_steps_in_order(aml):
    job = load_job(aml, PIPELINES[0])
    assert list(job.jobs) == ["validate_data", "finetune", "evaluate", "register_model"]
    rest = job._to_rest_object().as_dict()["properties"]
    steps = rest["jobs"]
    # each step consumes an output of the one before it, which is what orders steps in an Azure ML pipeline
    assert "validate_data.outputs.checked_train_data" in steps["finetune"]["inputs"]["train_data"]["value"]
    assert "finetune.outputs.model_output" in steps["evaluate"]["inputs"]["trained_model"]["value"]
    assert "evaluate.outputs.evaluation" in steps["register_model"]["inputs"]["evaluation"]["value"]
    finetune = steps["finetune"]
    assert finetune["resources"]["instance_count"] == "${{parent.inputs.instance_count}}"
    assert finetune["distribution"] == {
        "distribution_type": "PyTorch",
        "process_count_per_instance": "${{parent.inputs.gpus_per_node}}",
    }
    assert all(s["computeId"] == "${{parent.inputs.compute}}" for s in steps.values())


def test_finetune_pipeline_declares_the_component_interface(aml):
    """Every fine-tune component input is a pipeline input of the same name, so a spec binds by name."""
    job = load_job(aml, PIPELINES[0])
    finetune = aml.load_component(source=str(REPO / "components" / "finetune" / "component.yml"))
    missing = set(finetune.inputs) - set(job.inputs) - {"model_path"}
    assert not missing
    assert {"compute", "instance_count", "gpus_per_node", "model_name", "method", "model"} <= set(job.inputs)


def test_pipeline_values_can_be_overridden_like_the_cli_does(aml):
    job = aml.load_job(
        source=str(PIPELINES[0]),
        params_override=[
            {"inputs.method": "dora"},
            {"inputs.compute": "a100-cluster"},
            {"inputs.instance_count": 2},
            {"inputs.train_data.path": "azureml://datastores/workspaceblobstore/paths/azft/data/abc/train.jsonl"},
        ],
    )
    assert job._validate().passed
    props = job._to_rest_object().as_dict()["properties"]
    assert props["inputs"]["method"]["value"] == "dora"
    assert props["inputs"]["instance_count"]["value"] == "2"
    assert props["inputs"]["train_data"]["uri"].endswith("/abc/train.jsonl")


def test_finetune_pipeline_without_a_validation_file(aml):
    """A spec with no validation file: the input and its bindings are dropped and the job still validates."""
    job = load_job(aml, PIPELINES[0])
    del job.inputs["validation_data"]
    for node in job.jobs.values():
        binding = node.inputs.get("validation_data") if hasattr(node.inputs, "get") else None
        if binding is not None and "parent.inputs.validation_data" in str(binding._data):
            binding._data = None
    assert job._validate().passed
    steps = job._to_rest_object().as_dict()["properties"]["jobs"]
    assert all("validation_data" not in s["inputs"] for s in steps.values())


def test_registry_pipeline_wraps_azure_chat_completion_pipeline(aml):
    job = load_job(aml, PIPELINES[1])
    node = job.jobs["chat_completion"]
    assert node.component == "azureml://registries/azureml/components/chat_completion_pipeline/versions/0.0.82"
    bound = set(node.inputs)
    assert {
        "apply_lora",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "merge_lora_weights",
        "apply_deepspeed",
        "deepspeed_stage",
        "num_nodes_finetune",
        "number_of_gpu_to_use_finetuning",
        "max_seq_length",
        "precision",
        "compute_finetune",
    } <= bound
    steps = job._to_rest_object().as_dict()["properties"]["jobs"]
    assert "validate_data.outputs.checked_train_data" in steps["chat_completion"]["inputs"]["train_file_path"]["value"]
