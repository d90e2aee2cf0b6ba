"""Pure builders: a Plan → the Azure ML job entity the maas/maap backends submit. No network I/O here.

* ``build_maas_job(plan)`` — a serverless ``CustomModelFineTuningJob`` built directly (``create_finetuning_job``
  raises ``UnboundLocalError`` without validation data and silently stringifies ``Input`` objects).
* ``build_maap_job(plan)`` — ``pipelines/finetune.yml`` (azft's own components) or
  ``pipelines/registry_chat_completion.yml`` (Azure's registry ``chat_completion_pipeline``) loaded with
  ``load_job``, the spec's values bound to its inputs, compute / instance_count / distribution set on the training step.
* ``render(plan)`` — the job as the YAML-able dict ``azure.ai.ml.load_job`` reads back: what ``azft plan`` prints.

Local data files appear under the content-addressed URI they get once uploaded
(``azureml://datastores/workspaceblobstore/paths/azft/data/<sha256>/<name>``), so a rendered plan shows the real
request and a re-submit of the same data never uploads again.

``data.validation_split`` on maas: azft sends no validation file and the service holds out its own validation share
(Azure's documented auto-split); the plan says so in its notes. On maap the fraction goes to the training component,
which splits deterministically with the spec's seed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from azft.azure.upload import datastore_uri
from azft.errors import IncompatibleError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from azft.plan import DataFile, Plan

MAAS_TASK = "ChatCompletion"
FINETUNE_PIPELINE = "finetune.yml"
REGISTRY_PIPELINE = "registry_chat_completion.yml"
#: Default registry for first-party (Microsoft) models: no marketplace subscription needed.
FIRST_PARTY_REGISTRIES = frozenset({"azureml"})
MOCK_CLUSTER = "azft-mock-gpu"
DEFAULT_MAAS_HYPERPARAMETERS = {
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "learning_rate": "learning_rate",
}


# ----------------------------------------------------------------------------------------------------------------
# Data locations
# ----------------------------------------------------------------------------------------------------------------


def data_uri(d: "DataFile") -> str:
    """The URI a job reads a data file from: remote URIs unchanged, local files at their content-hash path."""
    if not d.local:
        return d.uri or d.ref
    if not d.sha256:
        raise UsageError(f"data.{d.role}: {d.ref} has not been hashed (does the file exist at {d.path}?)")
    return datastore_uri(d.sha256, Path(d.path or d.ref).name)


def data_inputs(plan: "Plan") -> dict[str, str]:
    return {d.role: data_uri(d) for d in plan.data}


# ----------------------------------------------------------------------------------------------------------------
# Shared job metadata
# ----------------------------------------------------------------------------------------------------------------


def output_model_name(plan: "Plan") -> str:
    return plan.spec.output.model_name or f"{plan.spec.name}-{plan.spec.method}"


def job_tags(plan: "Plan") -> dict[str, str]:
    """Tags every azft job carries: how to find its spec, plan and MLflow run again."""
    tags = {str(k): str(v) for k, v in plan.spec.tags.items()}
    tags.update(
        {
            "azft.spec_hash": plan.spec_hash,
            "azft.backend": plan.backend,
            "azft.target": plan.target,
            "azft.method": plan.spec.method,
            "azft.model": plan.spec.model,
        }
    )
    if plan.tracking_run_id:
        tags["azft.mlflow_run_id"] = plan.tracking_run_id
    tags.update(plan.data_tags())
    return tags


def registry_name(asset: Optional[str]) -> Optional[str]:
    m = re.match(r"azureml://registries/([^/]+)/", asset or "")
    return m.group(1) if m else None


def model_asset_uri(plan: "Plan") -> str:
    """The registry model a serverless job fine-tunes; an unversioned asset id takes the registry's `latest` label."""
    if plan.model_asset:
        return plan.model_asset
    spec_ref = plan.spec.model
    asset = spec_ref if spec_ref.startswith("azureml://registries/") else plan.model.registry_asset
    if not asset:
        raise IncompatibleError(
            f"{plan.spec.model} is not an Azure registry model; serverless fine-tuning needs one",
            hint="use a catalog model (`azft catalog`) or --backend maap/local",
        )
    if "/versions/" not in asset and "/labels/" not in asset:
        asset = asset.rstrip("/") + "/labels/latest"
    return asset


def needs_marketplace_subscription(plan: "Plan") -> bool:
    """Third-party models (any registry but Microsoft's own `azureml`) are sold through Azure Marketplace."""
    explicit = (plan.model.maas.__dict__ if plan.model.maas else {}).get("marketplace")
    if explicit is not None:
        return bool(explicit)
    reg = registry_name(plan.model.registry_asset or plan.spec.model)
    return reg is not None and reg not in FIRST_PARTY_REGISTRIES


def marketplace_subscription_name(plan: "Plan") -> str:
    asset = plan.model.registry_asset or plan.spec.model
    m = re.match(r"azureml://registries/[^/]+/models/([^/]+)", asset)
    base = (m.group(1) if m else plan.model.id).lower()
    return re.sub(r"[^a-z0-9-]", "-", base)[:50].strip("-") or "model"


def marketplace_model_id(plan: "Plan") -> str:
    asset = plan.model.registry_asset or plan.spec.model
    m = re.match(r"(azureml://registries/[^/]+/models/[^/]+)", asset)
    return m.group(1) if m else asset


# ----------------------------------------------------------------------------------------------------------------
# maas
# ----------------------------------------------------------------------------------------------------------------


def maas_hyperparameters(plan: "Plan") -> dict[str, str]:
    """The service's own hyperparameter names (catalog `backends.maas.hyperparameters`), every value a string."""
    from azft.catalog import load_catalog

    names = (load_catalog().raw.get("backends", {}).get("maas", {}) or {}).get(
        "hyperparameters"
    ) or DEFAULT_MAAS_HYPERPARAMETERS
    out: dict[str, str] = {}
    for ours, theirs in names.items():
        value = plan.hyperparameters.get(ours)
        if value is None:
            continue
        out[str(theirs)] = _str_value(value)
    return out


def _str_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) < 1e-4 else str(value)
    return str(value)


def build_maas_job(plan: "Plan"):
    """The serverless fine-tuning job (``CustomModelFineTuningJob``), exactly what ``jobs.create_or_update`` PUTs."""
    return _finetuning_job(plan)


def build_managed_job(plan: "Plan"):
    """Azure's managed fine-tuning job on the user's compute (``compute.pipeline: azure``): the same
    ``CustomModelFineTuningJob`` as serverless, with ``computeId`` (a cluster name, sent as the SDK sends it) or
    ``resources.instanceTypes``, and ``queueSettings.jobTier``. Azure marks such a job ``_fineTuningJobType: MaaP``
    (Azure/azure-sdk-assets recordings ``test_maap_finetuning_job.py*``)."""
    from azure.ai.ml.entities import JobResources, QueueSettings

    c = plan.spec.compute
    extra: dict[str, Any] = {}
    types = list(dict.fromkeys([*c.instance_types, *([c.instance_type] if c.instance_type and not c.cluster else [])]))
    if c.cluster or not types:
        extra["compute"] = cluster_name(plan)
    if types:
        extra["resources"] = JobResources(instance_types=types)
    if c.job_tier:
        extra["queue_settings"] = QueueSettings(job_tier=c.job_tier)
    return _finetuning_job(plan, **extra)


def _finetuning_job(plan: "Plan", **extra: Any):
    from azure.ai.ml import Input, Output

    from azft.azure.sdk import finetuning_job_class
    from azft.catalog import MANAGED_TASKS

    CustomModelFineTuningJob = finetuning_job_class()
    uris = data_inputs(plan)
    if "train" not in uris:
        raise UsageError("data.train is required")
    kwargs: dict[str, Any] = dict(
        name=plan.job_name,
        display_name=plan.spec.name,
        experiment_name=plan.spec.experiment,
        description=plan.spec.description,
        tags=job_tags(plan),
        task=MANAGED_TASKS.get(plan.spec.task, MAAS_TASK),
        model=Input(type="mlflow_model", path=model_asset_uri(plan)),
        training_data=Input(type="uri_file", path=uris["train"]),
        hyperparameters=maas_hyperparameters(plan),
        outputs={"registered_model": Output(type="mlflow_model", name=output_model_name(plan))},
    )
    if "validation" in uris:
        kwargs["validation_data"] = Input(type="uri_file", path=uris["validation"])
    kwargs.update(extra)
    return _quiet(lambda: CustomModelFineTuningJob(**kwargs))


def _quiet(fn):
    """Build an SDK entity without its 'experimental class' warning on stderr."""
    from azft.azure.sdk import quiet

    with quiet():
        return fn()


# ----------------------------------------------------------------------------------------------------------------
# maap
# ----------------------------------------------------------------------------------------------------------------


def pipeline_file(plan: "Plan") -> Path:
    from azft.resources import pipeline_file as find

    return find(REGISTRY_PIPELINE if plan.spec.compute.pipeline == "registry" else FINETUNE_PIPELINE)


def cluster_name(plan: "Plan") -> str:
    c = plan.spec.compute
    if c.cluster:
        return c.cluster
    if plan.backend == "mock":
        return MOCK_CLUSTER
    raise IncompatibleError("maap needs a compute cluster: set compute.cluster")


def gpus_per_node(plan: "Plan") -> int:
    from azft.catalog import load_catalog

    c = plan.spec.compute
    if c.gpus_per_node:
        return c.gpus_per_node
    sku = load_catalog().skus.get(c.instance_type or "", {})
    return int(sku.get("gpus") or 1)


def _finetune_inputs(plan: "Plan") -> dict[str, Any]:
    """Values for pipelines/finetune.yml, keyed by the component interface names (ARCHITECTURE.md)."""
    from azure.ai.ml import Input

    values = dict(plan.component_inputs)
    uris = data_inputs(plan)
    values.pop("train_data", None)
    values.pop("validation_data", None)
    values["train_data"] = Input(type="uri_file", path=uris["train"])
    if "validation" in uris:
        values["validation_data"] = Input(type="uri_file", path=uris["validation"])
    if plan.model.local_path:
        raise IncompatibleError(
            f"{plan.spec.model} is a directory on this machine; maap trains on an Azure ML cluster",
            hint="register the model folder in the workspace and use its azureml:// id, or use a hub id",
        )
    if plan.model_asset:
        # the registry model version the plan names is the model that trains (mounted; the recipe finds config.json)
        values["model_path"] = Input(type="mlflow_model", path=plan.model_asset)
    c = plan.spec.compute
    values.update(
        {
            "instance_count": c.instance_count,
            "gpus_per_node": gpus_per_node(plan),
            "compute": cluster_name(plan),
            "cluster": cluster_name(plan),
            "model_name": output_model_name(plan),
            "registered_model_name": output_model_name(plan),
        }
    )
    return values


def _registry_inputs(plan: "Plan") -> dict[str, Any]:
    """Values for pipelines/registry_chat_completion.yml (the registry pipeline's own input names)."""
    from azure.ai.ml import Input

    spec, hp, c = plan.spec, plan.hyperparameters, plan.spec.compute
    uris = data_inputs(plan)
    asset = plan.model_asset or plan.model.registry_asset
    if not asset:
        raise IncompatibleError(
            f"the registry pipeline fine-tunes Azure registry models; {spec.model} is not one",
            hint="compute.pipeline: azft",
        )
    if "/versions/" not in asset and "/labels/" not in asset:
        asset = asset.rstrip("/") + "/labels/latest"
    stage = c.deepspeed.stage
    values: dict[str, Any] = {
        "mlflow_model_path": Input(type="mlflow_model", path=asset),
        "model_asset_id": asset,
        "train_file_path": Input(type="uri_file", path=uris["train"]),
        "train_data": Input(type="uri_file", path=uris["train"]),
        "apply_lora": "true" if spec.method == "lora" else "false",
        "lora_r": spec.lora.r,
        "lora_alpha": spec.lora.alpha,
        "lora_dropout": spec.lora.dropout,
        "merge_lora_weights": "true",
        "num_train_epochs": hp["epochs"],
        "max_steps": hp["max_steps"] or -1,
        "learning_rate": hp["learning_rate"],
        "per_device_train_batch_size": hp["batch_size"],
        "per_device_eval_batch_size": hp["batch_size"],
        "gradient_accumulation_steps": hp["gradient_accumulation_steps"],
        "max_seq_length": hp["max_seq_length"],
        "pad_to_max_length": "true",
        "warmup_steps": registry_warmup_steps(plan) or 0,
        "logging_steps": hp["logging_steps"],
        "lr_scheduler_type": hp["lr_scheduler"],
        "weight_decay": hp["weight_decay"],
        "seed": hp["seed"],
        "precision": "32" if hp["precision"] == "fp32" else "16",
        "apply_deepspeed": "true" if stage else "false",
        "deepspeed_stage": str(stage) if stage in (2, 3) else "2",
        "num_nodes_finetune": c.instance_count,
        "number_of_gpu_to_use_finetuning": gpus_per_node(plan),
        "compute_model_import": cluster_name(plan),
        "compute_preprocess": cluster_name(plan),
        "compute_finetune": cluster_name(plan),
        "compute_model_evaluation": cluster_name(plan),
        "compute": cluster_name(plan),
        "registered_model_name": output_model_name(plan),
        "model_name": output_model_name(plan),
    }
    if c.instance_type:
        values["instance_type_finetune"] = c.instance_type
    if "validation" in uris:
        values["validation_file_path"] = Input(type="uri_file", path=uris["validation"])
        values["validation_data"] = Input(type="uri_file", path=uris["validation"])
    elif spec.data.validation_split:
        values["validation_split"] = spec.data.validation_split
    return values


def planned_steps(plan: "Plan") -> Optional[int]:
    """Optimizer steps the registry pipeline will take: rows ÷ (batch × GPUs), ÷ accumulation, × epochs (or
    max_steps). None when the training rows are not known here (remote data)."""
    import math

    hp = plan.hyperparameters
    if hp.get("max_steps") and hp["max_steps"] > 0:
        return int(hp["max_steps"])
    d = plan.data_file("train")
    rows = ((d.report or {}).get("stats") or {}).get("valid_rows") if d else None
    if not rows:
        return None
    world = gpus_per_node(plan) * plan.spec.compute.instance_count
    per_epoch = math.ceil(math.ceil(rows / (hp["batch_size"] * world)) / max(1, hp["gradient_accumulation_steps"]))
    return per_epoch * int(hp["epochs"])


def registry_warmup_steps(plan: "Plan") -> Optional[int]:
    import math

    ratio = plan.hyperparameters.get("warmup_ratio") or 0
    steps = planned_steps(plan)
    return None if steps is None else math.ceil(steps * ratio)


def registry_notes(plan: "Plan") -> list[str]:
    """How spec values reach Azure's registry pipeline when it has no input of the same meaning."""
    hp = plan.hyperparameters
    notes = []
    if hp.get("warmup_ratio"):
        notes.append(
            f"warmup_ratio {hp['warmup_ratio']:g} → warmup_steps {registry_warmup_steps(plan)} "
            f"(of {planned_steps(plan)} planned optimizer steps): the registry pipeline has no warmup ratio"
        )
    if hp.get("precision") in ("bf16", "auto", "fp16"):
        notes.append(
            f"precision {hp['precision']} → '16': the registry pipeline takes 16 or 32 and chooses the "
            "16-bit type itself"
        )
    notes.append(
        f"max_seq_length {hp['max_seq_length']} is sent with pad_to_max_length 'true': the registry "
        "pipeline truncates only then (every sequence is padded to that length)"
    )
    return notes


def _training_step(job) -> Optional[tuple[str, Any]]:
    """The pipeline step that trains: named `finetune`/`train`, or whose component's name says so."""
    steps = list((job.jobs or {}).items())
    for key in ("finetune", "train", "finetuning", "chat_completion", "finetune_pipeline"):
        for name, step in steps:
            if name == key:
                return name, step
    for name, step in steps:
        comp = getattr(step, "component", None)
        comp_name = comp if isinstance(comp, str) else getattr(comp, "name", "") or ""
        if "finetune" in comp_name or "chat_completion" in comp_name or "finetune" in name:
            return name, step
    return None


def _is_binding(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("${{")


def _drop_input(job, names: tuple[str, ...]) -> None:
    """Remove an optional data input and every step binding to it (a pipeline cannot declare optional data)."""
    for name in names:
        if job.inputs and name in job.inputs:
            del job.inputs[name]
        ref = f"parent.inputs.{name}"
        for step in (job.jobs or {}).values():
            for key in list((step.inputs or {}).keys()):
                data = getattr(step.inputs[key], "_data", None)
                if isinstance(data, str) and ref in data.replace(" ", ""):
                    del step.inputs[key]


def build_maap_job(plan: "Plan"):
    """The pipeline job: the spec's values bound to the pipeline's inputs, the training step on the named cluster."""
    from azure.ai.ml import PyTorchDistribution, load_job
    from azure.ai.ml.entities import JobResourceConfiguration

    path = pipeline_file(plan)
    job = _quiet(lambda: load_job(source=str(path)))
    registry = plan.spec.compute.pipeline == "registry"
    values = _registry_inputs(plan) if registry else _finetune_inputs(plan)
    # booleans go as "true"/"false": the SDK's YAML dump turns a bool literal into 1/0
    values = {k: (("true" if v else "false") if isinstance(v, bool) else v) for k, v in values.items()}
    for name in list(job.inputs or {}):
        if name in values:
            # attribute assignment keeps the SDK's PipelineInput wrapper (item assignment would drop it)
            setattr(job.inputs, name, values[name])
    if not any(d.role == "validation" for d in plan.data):
        _drop_input(job, ("validation_file_path",) if registry else ("validation_data",))
    if not registry and not plan.model_asset:
        _drop_input(job, ("model_path",))
    job.name = plan.job_name
    job.display_name = plan.spec.name
    job.experiment_name = plan.spec.experiment
    if plan.spec.description:
        job.description = plan.spec.description
    job.tags = {**(job.tags or {}), **job_tags(plan)}
    job.settings.default_compute = cluster_name(plan)
    step = _training_step(job)
    if step is not None and not registry:
        _, node = step
        # The pipeline binds these to its inputs; set them on the step too when it has literal values.
        resources = getattr(node, "resources", None)
        if resources is None or not _is_binding(getattr(resources, "instance_count", None)):
            node.resources = JobResourceConfiguration(instance_count=plan.spec.compute.instance_count)
        dist = getattr(node, "distribution", None)
        if dist is None or not _is_binding(getattr(dist, "process_count_per_instance", None)):
            node.distribution = PyTorchDistribution(process_count_per_instance=gpus_per_node(plan))
        budget = plan.spec.budget
        if budget and budget.max_hours:
            from azure.ai.ml.entities import CommandJobLimits

            # Azure ML cancels a command step running longer than limits.timeout (seconds)
            node.limits = CommandJobLimits(timeout=int(budget.max_hours * 3600))
    return job


# ----------------------------------------------------------------------------------------------------------------
# Building and rendering
# ----------------------------------------------------------------------------------------------------------------


def is_managed(plan: "Plan") -> bool:
    """The plan asks for Azure's managed fine-tuning job on the user's compute."""
    return plan.target == "maap" and plan.spec.compute.pipeline == "azure"


def build_job(plan: "Plan"):
    if plan.target == "maas":
        return build_maas_job(plan)
    if plan.target == "maap":
        return build_managed_job(plan) if is_managed(plan) else build_maap_job(plan)
    raise UsageError(f"no Azure job for target {plan.target!r}")


def job_to_dict(job) -> dict:
    """The YAML-able dict of an SDK job entity (what ``load_job`` reads back)."""
    from azft.azure.sdk import entity_to_dict

    return json.loads(json.dumps(entity_to_dict(job), default=str))


def render(plan: "Plan") -> dict:
    """The job exactly as it would be sent, as the dict ``azft plan --output yaml`` prints."""
    if (
        (plan.target == "maas" or is_managed(plan))
        and plan.spec.data.validation_split
        and not plan.data_file("validation")
    ):
        note = (
            f"data.validation_split {plan.spec.data.validation_split:g}: Azure's fine-tuning job takes no split "
            "fraction; no validation file is sent and the service holds out its own validation share"
        )
        if note not in plan.notes:
            plan.notes.append(note)
    if plan.target == "maas" and needs_marketplace_subscription(plan):
        note = (
            f"{plan.model.display_name} is a third-party model: submit first subscribes the workspace to it in "
            f"Azure Marketplace ({marketplace_subscription_name(plan)})"
        )
        if note not in plan.notes:
            plan.notes.append(note)
    if plan.target == "maap" and plan.spec.compute.pipeline == "registry":
        plan.notes.extend(n for n in registry_notes(plan) if n not in plan.notes)
    if (
        not plan.model_asset
        and plan.model.registry_asset
        and (plan.target == "maas" or plan.spec.compute.pipeline != "azft")
    ):
        note = (
            f"{plan.model.display_name}'s registry version is not published in Azure's registry specs, so azft "
            "cannot pin it: the job names the registry's `latest` label (`azft catalog refresh` reads the version "
            "from the live registry)"
        )
        if note not in plan.notes:
            plan.notes.append(note)
    job = build_job(plan)
    return _with_additional_includes(job, job_to_dict(job))


def _with_additional_includes(job, rendered: dict) -> dict:
    """Put each inline component's ``additional_includes`` back, as absolute paths.

    The SDK's dump of a pipeline drops them, and its relative paths meant something only next to the component's
    own file: the printed job names the folders themselves, so ``load_job`` (or ``az ml job create -f``) of the
    printed YAML builds the same code snapshot from any directory."""
    for name, node in (getattr(job, "jobs", None) or {}).items():
        component = getattr(node, "component", None)
        includes = getattr(component, "additional_includes", None)
        target = (rendered.get("jobs") or {}).get(name, {}).get("component")
        if not includes or not isinstance(target, dict):
            continue
        base = Path(getattr(component, "base_path", None) or ".")
        target["additional_includes"] = [str((base / str(p)).resolve()) for p in includes]
    return rendered
