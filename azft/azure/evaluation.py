"""``azft eval`` on maap: the ``evaluate`` component (``components/evaluate/``) as a job of its own (one step), run on
the training job's cluster against the training job's outputs.

The fine-tuned model is the finished pipeline's ``model_output``, named the way Azure ML names a job's output:
``azureml://jobs/<job>/outputs/<output>`` (Azure ML's data-access docs, "A path from an Azure ML job":
``azureml://jobs/<job-name>/outputs/<output-name>/paths/...``; Azure/azureml-examples' foundation-model fine-tuning
notebooks register ``azureml://jobs/{pipeline_job.name}/outputs/trained_model`` the same way). The base model, the
data, the task, the sequence length and the seed are the training job's own input values, read back from Azure.

azure-ai-ml is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

from azft.errors import UsageError

COMPONENT = "evaluate"
MODEL_OUTPUT = "model_output"
#: The training job's inputs the evaluate step takes over unchanged (pipelines/finetune.yml binds the same ones).
COPIED = ("model", "task", "max_seq_length", "seed")


def output_uri(job: str, output: str) -> str:
    return f"azureml://jobs/{job}/outputs/{output}"


def _value(inp: Any) -> Any:
    """A job input's literal value, or a data input's path (the SDK's input wrappers hold either in ``_data``; their
    ``path`` property raises for a literal)."""
    if inp is None or isinstance(inp, (str, int, float, bool)):
        return inp
    data = getattr(inp, "_data", inp)
    if isinstance(data, (str, int, float, bool)):
        return data
    path = data.__dict__.get("path") if hasattr(data, "__dict__") else None
    return str(path) if path else getattr(data, "value", None)


def training_inputs(entity: Any) -> dict[str, Any]:
    """What the evaluate step needs from a finished azft pipeline job (checked: it is one, and it completed)."""
    name = getattr(entity, "name", "?")
    jobs = getattr(entity, "jobs", None) or {}
    outputs = getattr(entity, "outputs", None) or {}
    if getattr(entity, "type", None) != "pipeline" or "finetune" not in jobs or MODEL_OUTPUT not in outputs:
        raise UsageError(
            f"job {name!r} is not azft's fine-tuning pipeline (no finetune step with a model_output): "
            "azft eval evaluates the model such a job wrote",
            hint="Azure's managed fine-tuning job registers its model: `azft deploy` it and use "
            "`azft eval JOB --endpoint NAME`",
        )
    raw = getattr(entity, "status", None)
    status = str(getattr(raw, "value", raw) or "")
    if status.lower() != "completed":
        raise UsageError(
            f"job {name!r} is {status or 'not finished'}, not Completed: it has no model to evaluate yet",
            hint=f"`azft wait {name}` and try again",
        )
    inputs = getattr(entity, "inputs", None) or {}
    values = {k: _value(inputs.get(k)) for k in (*COPIED, "model_path", "train_data", "validation_data", "compute")}
    settings = getattr(entity, "settings", None)
    default_compute = getattr(settings, "default_compute", None) if settings is not None else None
    values["compute"] = values.get("compute") or (str(default_compute).split("/")[-1] if default_compute else None)
    if not values["compute"]:
        raise UsageError(f"job {name!r} names no compute cluster to evaluate on")
    return {k: v for k, v in values.items() if v is not None}


def eval_job_name(job: str, settings: dict[str, Any]) -> str:
    """The same evaluation asked twice is one job: the name hashes the training job and the settings."""
    digest = hashlib.sha256(json.dumps({"job": job, **settings}, sort_keys=True).encode()).hexdigest()[:8]
    return f"{job[:200]}-eval-{digest}"


def build_eval_job(
    job: str,
    values: dict[str, Any],
    *,
    name: str,
    data_uri: Optional[str],
    samples: int,
    max_new_tokens: int,
    batch_size: int,
    max_rows: int,
    experiment: Optional[str] = None,
) -> Any:
    """The evaluate component as a one-step pipeline job on the training job's cluster."""
    from azure.ai.ml import Input, load_component

    from azft.azure.sdk import quiet
    from azft.resources import components_dir

    with quiet():
        component = load_component(source=str(components_dir() / COMPONENT / "component.yml"))
    kwargs: dict[str, Any] = {
        "trained_model": Input(type="uri_folder", path=output_uri(job, MODEL_OUTPUT)),
        "num_samples": samples,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "max_rows": max_rows,
        **{k: values[k] for k in COPIED if k in values},
    }
    if "model_path" in values:
        kwargs["model_path"] = Input(type="mlflow_model", path=values["model_path"])
    validation = data_uri or values.get("validation_data")
    if validation:
        kwargs["validation_data"] = Input(type="uri_file", path=validation)
    elif "train_data" in values:
        kwargs["train_data"] = Input(type="uri_file", path=values["train_data"])
    else:
        raise UsageError(
            f"job {job!r} has neither a validation nor a training file to evaluate on", hint="pass --data FILE"
        )
    node = component(**kwargs)
    node.compute = values["compute"]
    # one step, as in pipelines/finetune.yml: the component (its code, environment and optional-argument command
    # line) is sent as the pipeline's anonymous component, like every step of a training job
    from azure.ai.ml.entities import PipelineJob

    pipeline_job = PipelineJob(
        jobs={COMPONENT: node},
        name=name,
        display_name=f"evaluate {job}",
        experiment_name=experiment or "azft",
        tags={"azft.evaluates": job, "project": "azft"},
        description=f"azft eval: the evaluate component on {job}'s model_output",
    )
    pipeline_job.settings.default_compute = values["compute"]
    return pipeline_job
