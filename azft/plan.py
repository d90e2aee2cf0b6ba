"""spec → Plan: what a backend would do, whether it can, what it would cost. This is the dry-run.

No network I/O: it reads the spec's local data files (hash, checks, token counts) and the catalog, nothing else.
The same Plan object is what `backend.submit()` executes, so the dry-run and the real run share one path.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from azft.budget import check as budget_check
from azft.budget import spec_limits
from azft.catalog import MANAGED_TASKS, Catalog, ModelInfo, get_model, load_catalog
from azft.digest import file_sha256
from azft.errors import Verdict
from azft.spec import JobSpec, is_uri, was_set

#: Spec hyperparameters Azure's registry chat_completion_pipeline (v0.0.82) has no input for.
REGISTRY_NOT_SENT = ("gradient_checkpointing", "packing", "save_steps")
GENERIC_DEFAULTS = {"learning_rate": 2.0e-4, "batch_size": 4, "max_seq_length": 2048}
MAAS_EXPOSED = ("epochs", "batch_size", "learning_rate")


@dataclass
class DataFile:
    role: str  # train | validation
    ref: str  # as written in the spec
    path: Optional[str]  # absolute local path, or None for a remote URI
    uri: Optional[str]  # remote URI when given
    size: Optional[int] = None
    sha256: Optional[str] = None
    report: Optional[dict] = None
    source: Optional[dict] = None  # data.format: the source this file was converted from (path, sha256, format ...)
    source_error: Optional[str] = None  # data.format: why the source could not be converted

    @property
    def local(self) -> bool:
        return self.path is not None


@dataclass
class Plan:
    spec: JobSpec
    backend: str
    target: str  # the Azure path a backend drives: maas | maap | local (mock → its target)
    job_name: str
    spec_hash: str
    model: ModelInfo
    hyperparameters: dict
    component_inputs: dict
    data: list[DataFile]
    verdict: Verdict
    estimate: dict
    request: Any = None  # what would be sent: job YAML dict (maas/maap) or command line (local)
    workspace: Optional[dict] = None  # maas/maap/mock: the workspace a submit uses and where each value came from
    tracking_uri: Optional[str] = None
    tracking_run_id: Optional[str] = None
    prices_source: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    model_asset: Optional[str] = None  # the pinned registry model version an Azure job trains (maas/maap)
    budget: Optional[dict] = None  # the estimate against budget:/--max-usd (azft.budget.check)

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    def data_file(self, role: str) -> Optional[DataFile]:
        return next((d for d in self.data if d.role == role), None)

    def data_report(self) -> dict:
        return {d.role: d.report for d in self.data if d.report is not None}

    def data_tags(self) -> dict[str, str]:
        """Tags naming converted data: the source's hash and format next to the converted file's hash."""
        tags = {}
        for d in self.data:
            if d.source and d.sha256:
                tags[f"azft.data.{d.role}.sha256"] = d.sha256
                tags[f"azft.data.{d.role}.source_sha256"] = d.source["sha256"]
                tags[f"azft.data.{d.role}.format"] = d.source["format"]
        return tags

    def to_dict(self) -> dict:
        """The plan as data (what `azft plan --output json|yaml` prints), secrets redacted."""
        from azft.redact import redact

        return redact(
            {
                "backend": self.backend,
                "target": self.target,
                "job_name": self.job_name,
                "spec_hash": self.spec_hash,
                "verdict": {
                    "ok": self.verdict.ok,
                    "reasons": self.verdict.reasons,
                    "alternatives": self.verdict.alternatives,
                    "warnings": self.verdict.warnings,
                },
                "model": {
                    "ref": self.spec.model,
                    "id": self.model.id,
                    "registry_asset": self.model.registry_asset,
                    "asset": self.model_asset,
                    "hf_id": self.model.hf_id,
                    "local_path": self.model.local_path,
                    "context_length": self.model.context_length,
                    "maas_status": self.model.maas.status,
                },
                "task": self.spec.task,
                "method": self.spec.method,
                "hyperparameters": self.hyperparameters,
                "data": [
                    {
                        k: v
                        for k, v in {
                            "role": d.role,
                            "ref": d.ref,
                            "path": d.path,
                            "uri": d.uri,
                            "size": d.size,
                            "sha256": d.sha256,
                            "source": d.source,
                            "ok": None if d.report is None else d.report.get("ok"),
                            "errors": None if d.report is None else d.report.get("error_count"),
                        }.items()
                        if v is not None
                    }
                    for d in self.data
                ],
                "estimate": self.estimate,
                "budget": self.budget,
                "request": self.request,
                "workspace": self.workspace,
                "tracking": {"experiment": self.spec.experiment, "tracking_uri": self.tracking_uri},
                "notes": self.notes,
            }
        )


# ----------------------------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------------------------


def make_plan(
    spec: JobSpec,
    backend: str,
    *,
    prices: Optional[dict] = None,
    prices_source: Optional[str] = None,
    check_data: bool = True,
    force_suffix: Optional[str] = None,
    today: Optional[_dt.date] = None,
    region: Optional[str] = None,
    target: Optional[str] = None,
) -> Plan:
    """The plan: verdict, resolved inputs, data reports, estimates. Pure: the backend renders its own request
    (``Backend.render``) and ``azft.api.plan`` puts it in ``plan.request``.

    ``target``: the path whose rules apply (``Backend.target_for(spec)``; the mock emulates maas or maap).
    """
    cat = load_catalog()
    model = model_for_spec(spec)
    target = target or backend
    hp = resolve_hyperparameters(spec, model)
    data = _data_files(spec)
    for d in data:
        if d.local and spec.data.format:
            _convert_source(spec, d)
        if d.local and Path(d.path).is_file():
            d.size = Path(d.path).stat().st_size
            d.sha256 = file_sha256(d.path)
    data_hashes = ",".join(f"{d.role}={d.sha256 or d.uri}" for d in data)
    asset = pinned_model_asset(spec, model, target)
    spec_hash = spec.content_hash(extra=f"|{backend}|{target}|{data_hashes}" + (f"|model={asset}" if asset else ""))
    job_name = f"{spec.name}-{spec_hash[:10]}"
    if force_suffix:
        job_name = f"{job_name}-{force_suffix}"

    verdict = Verdict(ok=True)
    check_compatibility(spec, model, backend, target, hp, cat, verdict, today=today, region=region)
    _check_values(spec, model, target, data, cat, verdict)
    if check_data:
        _check_data(spec, model, target, data, hp, verdict)

    plan = Plan(
        spec=spec,
        backend=backend,
        target=target,
        job_name=job_name,
        spec_hash=spec_hash,
        model=model,
        hyperparameters=hp,
        component_inputs=component_inputs(spec, model, hp, data),
        data=data,
        verdict=verdict,
        estimate={},
        tracking_uri=spec.tracking.tracking_uri,
        prices_source=prices_source,
        model_asset=asset,
    )
    plan.estimate = estimate(plan, cat, prices or {}, prices_source)
    plan.budget = budget_check(plan.estimate, spec, spec_limits(spec))
    _refuse_unfit(plan, cat)
    return plan


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def pinned_model_asset(spec: JobSpec, model: ModelInfo, target: str) -> Optional[str]:
    """The registry model version an Azure job trains: the spec's own ``.../versions/N``, else the catalog model at
    the registry version its facts were read from. None on local, for a hub id the spec names (maap trains that),
    and when the registry version is not published (maas then sends the registry's ``latest`` label, with a note).
    """
    if target not in ("maas", "maap"):
        return None
    ref = spec.model
    if ref.startswith("azureml://registries/") and "/versions/" in ref:
        return ref
    if target == "maap" and HUB_ID.fullmatch(ref) and not model.local_path:
        return None  # the spec names a hub id: from_pretrained on it, as written
    if model.registry_asset and model.registry_version:
        base = re.sub(r"/(versions|labels)/.*$", "", model.registry_asset)
        return f"{base}/versions/{model.registry_version}"
    return None


def model_for_spec(spec: JobSpec) -> ModelInfo:
    """The spec's model, or a SpecError naming the `model:` line: unknown ids, and directories that are not models."""
    from azft.errors import Problem, SpecError, UsageError
    from azft.spec import line_of

    file = str(spec.source) if spec.source else None
    where = {"file": file, "line": line_of(spec, "model"), "field": "model"}
    try:
        model = get_model(spec.model, base_dir=spec.base_dir)
    except UsageError as e:
        raise SpecError(
            f"{file or 'spec'}: unknown model", problems=[Problem(e.message, hint=e.hint, **where)]
        ) from None
    if model.local_path and not (Path(model.local_path) / "config.json").is_file():
        raise SpecError(
            f"{file or 'spec'}: not a model directory",
            problems=[
                Problem(
                    f"{spec.model} is a directory without config.json, not a model directory",
                    **where,
                    hint="give a catalog id (`azft catalog`), a hub id, or a folder saved with save_pretrained",
                )
            ],
        )
    return model


# linear layers LoRA can target, by config.json model_type (names as in transformers' modeling files)
LINEAR_MODULES = {
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "phi": ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),
}


def _check_values(spec: JobSpec, model: ModelInfo, target: str, data: list[DataFile], cat: Catalog, v: Verdict) -> None:
    """Values that cannot work on this backend, refused before anything runs (the recipe would fail later)."""
    import os

    def refuse(reason: str, *alternatives: str) -> None:
        v.ok = False
        v.reasons.append(reason)
        v.alternatives.extend(a for a in alternatives if a not in v.alternatives)

    if target != "maas" and spec.method != "full":
        from azft.memory import architecture_for

        arch, _ = architecture_for(model, cat)
        known = LINEAR_MODULES.get(arch.model_type if arch else "")
        missing = [
            m for m in spec.lora.target_modules if m != "all-linear" and known and m.rsplit(".", 1)[-1] not in known
        ]
        if missing:
            refuse(
                f"lora.target_modules: {model.display_name} has no module named {', '.join(missing)} "
                f"(its linear layers: {', '.join(known or ())}; or all-linear)",
                f"lora.target_modules: [{', '.join(known[:2])}] (or all-linear)"
                if known
                else "lora.target_modules: [all-linear]",
            )
    if target == "local":
        for d in data:
            if not d.local:
                refuse(
                    f"data.{d.role}: {d.ref} is a cloud URI; the local backend trains on local files",
                    f"data.{d.role}: a local copy of {d.ref}",
                    "--backend maap or --backend maas (Azure reads it)",
                )
        if spec.local.device != "cuda" and shutil.which("nvidia-smi") is None:
            cores = os.cpu_count() or 1
            if spec.local.num_processes > cores:
                refuse(
                    f"local.num_processes: {spec.local.num_processes} processes, but this machine has {cores} "
                    "CPU cores and no GPU",
                    f"local.num_processes: {cores} or fewer",
                    "--backend maap for more processes (GPUs) than this machine has",
                )


def resolve_hyperparameters(spec: JobSpec, model: ModelInfo) -> dict:
    """Spec values win; unset ones take the model's registry defaults, then generic defaults."""
    hp = spec.hyperparameters.model_dump()
    defaults = model.defaults
    for key in ("learning_rate", "batch_size", "max_seq_length"):
        if hp.get(key) is None:
            hp[key] = defaults.get(key, GENERIC_DEFAULTS[key])
    if not was_set(spec, "hyperparameters", "epochs") and "epochs" in defaults:
        hp["epochs"] = defaults["epochs"]
    if model.context_length and not was_set(spec, "hyperparameters", "max_seq_length"):
        hp["max_seq_length"] = min(hp["max_seq_length"], model.context_length)
    return hp


def _data_files(spec: JobSpec) -> list[DataFile]:
    out = []
    for role in ("train", "validation"):
        ref = getattr(spec.data, role)
        if not ref:
            continue
        if is_uri(ref):
            out.append(DataFile(role=role, ref=ref, path=None, uri=ref))
        else:
            out.append(DataFile(role=role, ref=ref, path=spec.resolve_path(ref), uri=None))
    return out


def _convert_source(spec: JobSpec, d: DataFile) -> None:
    """data.format: point ``d`` at the converted file and remember its source (see azft.data.source)."""
    if not Path(d.path).exists():
        return  # _check_data says so
    from azft.data.source import try_prepare

    prepared, err = try_prepare(d.path, spec.data.format, spec.task)
    if err is not None:
        d.source_error = err.message + (f" ({err.hint})" if err.hint else "")
        return
    d.source = prepared.to_dict()
    d.path = prepared.path


def component_inputs(spec: JobSpec, model: ModelInfo, hp: dict, data: list[DataFile]) -> dict:
    """Values for components/finetune/component.yml, named as its inputs (see ARCHITECTURE.md)."""
    if model.local_path:
        model_ref = model.local_path
    elif model.id == "tiny-phi3":
        model_ref = "tiny-phi3"
    else:
        model_ref = model.hf_id or model.registry_asset or spec.model
    inputs: dict[str, Any] = {
        "model": model_ref,
        "task": spec.task,
        "method": spec.method,
        "epochs": hp["epochs"],
        "max_steps": hp["max_steps"] or -1,
        "learning_rate": hp["learning_rate"],
        "batch_size": hp["batch_size"],
        "gradient_accumulation_steps": hp["gradient_accumulation_steps"],
        "max_seq_length": hp["max_seq_length"],
        "warmup_ratio": hp["warmup_ratio"],
        "lr_scheduler": hp["lr_scheduler"],
        "weight_decay": hp["weight_decay"],
        "seed": hp["seed"],
        "packing": hp["packing"],
        "precision": hp["precision"],
        "gradient_checkpointing": hp["gradient_checkpointing"],
        "lora_r": spec.lora.r,
        "lora_alpha": spec.lora.alpha,
        "lora_dropout": spec.lora.dropout,
        "lora_target_modules": ",".join(spec.lora.target_modules),
        "deepspeed_stage": spec.compute.deepspeed.stage,
        "deepspeed_offload": spec.compute.deepspeed.offload,
        "save_steps": hp["save_steps"],
        "logging_steps": hp["logging_steps"],
        "validation_split": spec.data.validation_split or 0.0,
    }
    for d in data:
        key = "train_data" if d.role == "train" else "validation_data"
        inputs[key] = d.path or d.uri
    return inputs


# ----------------------------------------------------------------------------------------------------------------
# Compatibility: the catalog's rules applied to one spec on one backend
# ----------------------------------------------------------------------------------------------------------------


def _fmt_date(iso: Optional[str]) -> str:
    if not iso:
        return "an unknown date"
    return _dt.date.fromisoformat(iso).strftime("%Y-%m-%d")


def maas_models(cat: Catalog, today: Optional[_dt.date] = None) -> list[str]:
    return [m.id for m in cat.models.values() if m.maas.available_on(today)]


def _rehearsal_model(working: list[str]) -> str:
    """The model a `--backend mock` rehearsal of the serverless path uses: the smallest that works on maas."""
    return "phi-4-mini-instruct" if "phi-4-mini-instruct" in working or not working else working[0]


def check_compatibility(
    spec: JobSpec,
    model: ModelInfo,
    backend: str,
    target: str,
    hp: dict,
    cat: Catalog,
    v: Verdict,
    today: Optional[_dt.date] = None,
    region: Optional[str] = None,
) -> None:
    """``region``: the workspace's region as resolved (spec, AZURE_LOCATION, config.json), else the spec's."""

    def refuse(reason: str, *alternatives: str) -> None:
        v.ok = False
        v.reasons.append(reason)
        for a in alternatives:
            if a not in v.alternatives:
                v.alternatives.append(a)

    method = cat.methods[spec.method]
    ctx = model.context_length
    if ctx and hp["max_seq_length"] > ctx:
        refuse(
            f"max_seq_length {hp['max_seq_length']} exceeds {model.display_name}'s context length of {ctx} tokens",
            f"set hyperparameters.max_seq_length <= {ctx}",
        )
    if spec.method == "qlora" and spec.compute.deepspeed.stage == 3:
        v.warnings.append(
            "QLoRA with ZeRO-3 needs bitsandbytes quant storage matching the compute dtype; ZeRO-2 is the safer choice"
        )
    if target not in method["backends"]:
        refuse(
            f"method {spec.method!r} is not offered on {target}"
            + (" — serverless fine-tuning chooses its own adapter method (LoRA)" if target == "maas" else ""),
            *[f"--backend {b} for {spec.method}" for b in method["backends"] if b not in (target, "mock")],
        )

    if target == "maas":
        _check_maas(spec, model, hp, cat, refuse, v, today, region or spec.azure.region)
    elif target == "maap":
        _check_maap(spec, model, cat, refuse, v, backend)
    elif target == "local":
        _check_local(spec, model, refuse, v)


def _maas_offer_problem(spec, model: ModelInfo, working: list[str], today) -> tuple[str | None, list[str]]:
    """Why Azure offers no serverless fine-tuning of the model today (None when it does), and what works instead."""
    phi4 = ", ".join(m for m in working) or "none listed"
    name = model.display_name
    problem = None
    alts: list[str] = []
    maap_alt = (
        "--backend maap: fine-tune it on your own Azure ML GPU cluster "
        f"({', '.join(model.allowed_skus[:2])}{', ...' if len(model.allowed_skus) > 2 else ''})"
        if model.allowed_skus
        else None
    )
    if not model.in_catalog:
        problem = (
            f"{spec.model} is not an Azure catalog model; serverless fine-tuning takes only the models Azure "
            "offers it for"
        )
        alts = [
            a for a in (f"--backend maap or --backend local for {spec.model}", f"model: one of {phi4} on maas") if a
        ]
    elif model.maas.status == "retired":
        problem = (
            f"serverless (MaaS) fine-tuning of {name} was retired by Azure on "
            f"{_fmt_date(model.maas.retirement_date)} (deprecated {_fmt_date(model.maas.deprecation_date)})"
        )
        alts = [a for a in (maap_alt, f"model: {phi4} — serverless fine-tuning that works today") if a]
    elif model.maas.status == "never":
        why = model.maas.note or "no serverless fine-tuning offer exists for it"
        problem = f"{name} never had serverless (MaaS) fine-tuning: {why}"
        alts = [
            a
            for a in (
                maap_alt,
                "--backend local: train it on this machine" if model.local else None,
                f"--backend mock with model: {_rehearsal_model(working)}: the serverless "
                "path end to end against the Azure ML emulator, no Azure needed"
                if model.local
                else None,
                f"model: {phi4} on maas",
            )
            if a
        ]
    elif model.maas.status == "unlisted":
        problem = f"{name} has no serverless fine-tuning offer today ({model.maas.note})"
        alts = [a for a in (maap_alt, f"model: {phi4} on maas") if a]
    elif not model.maas.available_on(today):
        problem = f"serverless fine-tuning of {name} ended on {_fmt_date(model.maas.retirement_date)}"
        alts = [a for a in (maap_alt, f"model: {phi4} on maas") if a]
    return problem, alts


def _check_maas(spec, model: ModelInfo, hp, cat: Catalog, refuse, v: Verdict, today, region: Optional[str]) -> None:
    working = maas_models(cat, today)
    override = spec.maas.allow_unavailable
    name = model.display_name
    problem, alts = _maas_offer_problem(spec, model, working, today)
    if problem:
        if override and model.in_catalog and model.maas.status != "never":
            v.warnings.append(problem + " — submitting anyway because maas.allow_unavailable is true")
        else:
            # only an offer that existed can still be open in a workspace; a model that never had one cannot be
            hint = (
                " (if your workspace still allows it, set `maas: {allow_unavailable: true}`)"
                if model.in_catalog and model.maas.status != "never"
                else ""
            )
            refuse(problem + hint, *alts)
    if region and model.maas.regions and region.lower().replace(" ", "") not in model.maas.regions and not problem:
        msg = f"serverless fine-tuning of {name} is offered in {', '.join(model.maas.regions)}, not in {region}"
        if override:
            v.warnings.append(msg + " — submitting anyway because maas.allow_unavailable is true")
        else:
            refuse(msg, f"use a workspace in {model.maas.regions[0]}", "--backend maap in your region")
    if spec.task != "chat-completion":
        refuse(
            f"serverless fine-tuning of Phi models supports the chat-completion task only, not {spec.task}",
            "--backend maap or --backend local for other tasks",
        )
    ignored = [
        f"hyperparameters.{k}"
        for k in spec.hyperparameters.model_fields
        if k not in MAAS_EXPOSED and was_set(spec, "hyperparameters", k)
    ]
    ignored += [f"lora.{k}" for k in spec.lora.model_fields if was_set(spec, "lora", k)]
    ignored += [f"compute.{k}" for k in spec.compute.model_fields if was_set(spec, "compute", k)]
    if ignored:
        v.warnings.append(
            "the serverless service exposes only epochs, batch_size and learning_rate; ignored on maas: "
            + ", ".join(ignored)
        )
    bounds = model.defaults.get("learning_rate_bounds")
    if bounds and not (bounds[0] <= hp["learning_rate"] <= bounds[1]):
        v.warnings.append(
            f"learning_rate {hp['learning_rate']:g} is outside the registry's range "
            f"{bounds[0]:g}..{bounds[1]:g} for {name}"
        )


def _check_maap(spec, model: ModelInfo, cat: Catalog, refuse, v: Verdict, backend: str) -> None:
    c = spec.compute
    if model.local and not model.local_path:
        refuse(
            f"{model.display_name} exists only on this machine; maap trains on an Azure ML cluster",
            "--backend local",
            "model: phi-3-mini-4k-instruct (or another catalog model) on maap",
        )
    managed = c.pipeline == "azure"
    if not managed and (c.instance_types or c.job_tier):
        refuse(
            "compute.instance_types and compute.job_tier are settings of Azure's managed fine-tuning job",
            "compute.pipeline: azure",
            "remove them (compute.cluster and compute.instance_type choose the "
            f"cluster for compute.pipeline: {c.pipeline})",
        )
    if managed:
        _check_managed(spec, model, cat, refuse, v)
    if not c.cluster and backend != "mock" and not (managed and (c.instance_types or c.instance_type)):
        refuse(
            "maap needs a compute cluster: set compute.cluster (and compute.instance_type with "
            "compute.create_cluster: true to create it)",
            "compute: {cluster: gpu-a100, instance_type: "
            f"{(model.allowed_skus or ['Standard_NC24ads_A100_v4'])[0]}, create_cluster: true}}",
        )
    if c.create_cluster and not c.instance_type:
        refuse(
            "compute.create_cluster needs compute.instance_type (the VM size of the new cluster)",
            f"compute.instance_type: {(model.allowed_skus or ['Standard_NC24ads_A100_v4'])[0]}",
        )
    sku = c.instance_type
    for other in c.instance_types:
        _check_size_rules(spec, model, cat, other, refuse, v)
    if sku:
        _check_size_rules(spec, model, cat, sku, refuse, v)
    elif c.cluster:
        v.warnings.append(
            f"compute.instance_type is not set: the cluster {c.cluster}'s VM size is checked at submit "
            "(GPU memory against the plan's estimate"
            + (", and the model's registry compute list)" if c.pipeline != "azft" else ")")
        )
    if c.pipeline == "registry":
        _check_registry_pipeline(spec, model, cat, refuse, v)


def _check_registry_pipeline(spec, model: ModelInfo, cat: Catalog, refuse, v: Verdict) -> None:
    """compute.pipeline: registry — what Azure's registry chat_completion_pipeline can and cannot take."""
    c = spec.compute
    if not cat.methods[spec.method].get("registry_pipeline"):
        refuse(
            f"Azure's registry chat_completion_pipeline has no {spec.method.upper()}: it offers LoRA or full "
            "fine-tuning",
            "compute.pipeline: azft (azft's own component supports qlora and dora)",
        )
    if c.deepspeed.stage not in cat.backends["maap"]["registry_pipeline_deepspeed_stages"]:
        refuse(
            "Azure's registry chat_completion_pipeline supports DeepSpeed ZeRO stage 2 or 3 only",
            "compute.deepspeed.stage: 2",
            "compute.pipeline: azft for ZeRO-1",
        )
    if not model.registry_asset:
        refuse(
            f"the registry pipeline fine-tunes Azure registry models; {spec.model} is not one",
            "compute.pipeline: azft",
        )
    if spec.task != "chat-completion":
        refuse("the registry chat_completion_pipeline is for the chat-completion task", "compute.pipeline: azft")
    if spec.data.validation_split and not spec.data.validation:
        refuse(
            "Azure's registry chat_completion_pipeline takes a validation file, not a split fraction "
            f"(data.validation_split {spec.data.validation_split:g})",
            f"split locally first: azft data split {spec.data.train} --validation {spec.data.validation_split:g}"
            " and set data.validation",
            "compute.pipeline: azft (azft's component splits with the spec's seed)",
        )
    unsent = [f"hyperparameters.{k}" for k in REGISTRY_NOT_SENT if was_set(spec, "hyperparameters", k)]
    unsent += ["lora.target_modules"] if was_set(spec, "lora", "target_modules") else []
    if unsent:
        v.warnings.append(
            "Azure's registry chat_completion_pipeline has no input for "
            + ", ".join(unsent)
            + ": its own recipe decides them (not sent; compute.pipeline: azft honours them)"
        )
    if (
        was_set(spec, "hyperparameters", "warmup_ratio")
        and spec.hyperparameters.warmup_ratio
        and not spec.hyperparameters.max_steps
        and is_uri(spec.data.train or "")
    ):
        refuse(
            "warmup_ratio needs the planned step count, which azft cannot count for remote training data "
            "on the registry pipeline (it takes warmup_steps)",
            "hyperparameters.max_steps",
            "a local data.train file",
            "compute.pipeline: azft",
        )


#: Spec fields Azure's managed job has a place for (the rest are its recipe's choice, named in a warning).
MANAGED_COMPUTE = ("cluster", "instance_type", "instance_types", "job_tier", "pipeline", "create_cluster")


def _check_managed(spec, model: ModelInfo, cat: Catalog, refuse, v: Verdict) -> None:
    """Azure's managed fine-tuning job (the serverless FineTuningJob) on the user's compute: Azure's own recipe."""
    c = spec.compute
    if not model.registry_asset and not spec.model.startswith("azureml://registries/"):
        refuse(
            f"Azure's managed fine-tuning job trains Azure registry models; {spec.model} is not one",
            "compute.pipeline: azft",
        )
    if spec.task not in MANAGED_TASKS:
        refuse(
            f"Azure's managed fine-tuning job takes the {' and '.join(MANAGED_TASKS)} tasks, not {spec.task}",
            "compute.pipeline: azft",
        )
    if not cat.methods[spec.method].get("registry_pipeline"):
        refuse(
            f"Azure's managed fine-tuning job has no {spec.method.upper()}: its recipe applies the model's "
            "registry defaults (LoRA or full fine-tuning)",
            "compute.pipeline: azft (qlora and dora)",
        )
    if c.cluster and c.instance_types:
        refuse(
            "Azure's managed job runs on a cluster or on instance types, not both",
            "remove compute.instance_types to use the cluster",
            "remove compute.cluster to use instance types",
        )
    if c.job_tier and c.cluster:
        v.warnings.append(
            f"compute.job_tier {c.job_tier}: the queue tier applies to serverless compute; on cluster "
            f"{c.cluster} the cluster's own priority decides"
        )
    ignored = [
        f"hyperparameters.{k}"
        for k in spec.hyperparameters.model_fields
        if k not in MAAS_EXPOSED and was_set(spec, "hyperparameters", k)
    ]
    ignored += [f"lora.{k}" for k in spec.lora.model_fields if was_set(spec, "lora", k)]
    ignored += [f"compute.{k}" for k in c.model_fields if k not in MANAGED_COMPUTE and was_set(spec, "compute", k)]
    if was_set(spec, "method"):
        ignored.append("method")
    if ignored:
        v.warnings.append(
            "Azure's managed fine-tuning job takes epochs, batch_size and learning_rate; its recipe "
            "decides the rest from the model's registry defaults. Not sent: " + ", ".join(ignored)
        )


def _check_size_rules(spec, model: ModelInfo, cat: Catalog, sku: str, refuse, v: Verdict) -> None:
    """The model's registry compute list binds Azure's registry pipeline; azft's component runs on any GPU that fits."""
    c = spec.compute
    on_list = not model.allowed_skus or sku.lower() in {s.lower() for s in model.allowed_skus}
    listed = ", ".join(model.allowed_skus)
    if c.pipeline != "azft":
        who = "Azure's registry pipeline" if c.pipeline == "registry" else "Azure's managed fine-tuning job"
        if not model.allowed_skus:
            v.warnings.append(
                f"the registry publishes no fine-tuning compute list for {model.display_name}; {who} may refuse {sku}"
            )
        elif not on_list:
            refuse(
                f"{sku} is not in {model.display_name}'s fine-tuning compute list (registry finetuneComputes), "
                f"which {who} enforces",
                "compute.instance_type: one of " + listed,
                "compute.pipeline: azft (azft's component runs on any GPU size whose memory fits)",
            )
    elif not on_list:
        v.warnings.append(
            f"{sku} is not in {model.display_name}'s registry fine-tuning compute list ({listed}); "
            "that list binds Azure's registry pipeline only — azft's component runs on any GPU size "
            "whose memory holds the plan's estimate"
        )
    info = cat.skus.get(sku)
    if info is None:
        v.warnings.append(
            f"{sku} is not in azft's GPU size table (`azft catalog --sizes`): its GPU memory is not "
            "checked against the plan's estimate"
        )
    elif c.gpus_per_node and c.gpus_per_node > info["gpus"]:
        refuse(
            f"gpus_per_node {c.gpus_per_node} exceeds the {info['gpus']} GPUs of {sku}",
            f"compute.gpus_per_node <= {info['gpus']}",
        )


def _total(mem: Optional[dict]) -> Optional[float]:
    return mem.get("total_gb") if mem else None


def sizes_that_fit(plan: "Plan", cat: Catalog, limit: int = 3) -> list[tuple[str, dict, dict]]:
    """The smallest GPU sizes (by hourly price, then GPU memory) whose GPUs hold the plan's estimate."""
    fits = []
    for name, info in cat.skus.items():
        mem = memory_estimate(plan, cat, name)
        total = _total(mem)
        if total is not None and total <= info["gpu_memory_gb"]:
            fits.append((name, info, mem))
    fits.sort(key=lambda x: (x[1].get("price_per_hour") or 1e9, x[1]["gpus"] * x[1]["gpu_memory_gb"]))
    return fits[:limit]


def check_memory_fit(plan: "Plan", cat: Catalog, sku: Optional[str] = None) -> Optional[str]:
    """None when the plan fits ``sku``'s GPUs (or cannot be checked); else the refusal, naming the estimate."""
    sku = sku or plan.spec.compute.instance_type
    info = cat.skus.get(sku or "")
    if not info:
        return None
    mem = memory_estimate(plan, cat, sku)
    total = _total(mem)
    if total is None or total <= info["gpu_memory_gb"]:
        return None
    terms = sorted((mem.get("terms") or {}).items(), key=lambda kv: -kv[1].get("gb", 0))[:3]
    parts = ", ".join(f"{name.replace('_', ' ')} {t['gb']:.1f}" for name, t in terms)
    return (
        f"estimated {total:g} GB per GPU (largest terms: {parts}) does not fit {sku}: "
        f"{info['gpu_memory_gb']} GB per GPU" + (f" ({info['gpu']})" if info.get("gpu") else "")
    )


def _refuse_unfit(plan: "Plan", cat: Catalog) -> None:
    if plan.target != "maap":
        return
    problem = check_memory_fit(plan, cat)
    if not problem:
        return
    v = plan.verdict
    if plan.spec.compute.pipeline != "azft":
        # Azure's registry pipeline trains with its own recipe (its ZeRO configs offload to CPU): azft's estimate of
        # its own recipe is a hint there, and the registry's compute list is the rule
        v.warnings.append(
            f"{problem} (azft's estimate of its own recipe; Azure's "
            f"{'registry pipeline' if plan.spec.compute.pipeline == 'registry' else 'managed job'} "
            "uses its own)"
        )
        return
    v.ok = False
    v.reasons.append(problem)
    fits = sizes_that_fit(plan, cat)
    if fits:
        v.alternatives.append(
            "compute.instance_type: "
            + "; ".join(
                f"{n} ({i['gpus']}x {i['gpu_memory_gb']} GB, est. {m['total_gb']:g} GB per GPU)" for n, i, m in fits
            )
        )
    else:
        v.reasons.append("no GPU size in azft's table (`azft catalog --sizes`) holds this configuration")
    alts = [
        "smaller hyperparameters.batch_size or max_seq_length (with gradient_accumulation_steps to keep the "
        "effective batch)",
        "compute.deepspeed: {stage: 3, offload: optimizer}",
    ]
    if plan.spec.method != "qlora":
        alts.insert(0, "method: qlora (4-bit base weights)")
    for alt in alts:
        if alt not in v.alternatives:
            v.alternatives.append(alt)


def _check_local(spec, model: ModelInfo, refuse, v: Verdict) -> None:
    c = spec.compute
    has_gpu = shutil.which("nvidia-smi") is not None
    if load_catalog().methods[spec.method].get("needs_cuda") and (spec.local.device == "cpu" or not has_gpu):
        refuse(
            "QLoRA needs a CUDA GPU (bitsandbytes 4-bit weights); this machine has none",
            "method: lora or dora on this machine",
            "method: qlora with --backend maap (A100 cluster)",
        )
    if c.instance_count > 1:
        refuse(
            "the local backend runs on one machine; compute.instance_count must be 1",
            "--backend maap for multi-node training",
            "local.num_processes for several processes here",
        )
    if model.registry_asset and not model.hf_id and not model.local_path:
        refuse(
            f"{spec.model} is an Azure registry asset; the local backend needs a Hugging Face id or a local "
            "model directory",
            "model: <local directory with config.json>",
        )
    if model.parameters_b and model.parameters_b >= 3 and not has_gpu:
        v.warnings.append(
            f"{model.display_name} has {model.parameters_b:g}B parameters: training it on CPU is very "
            "slow; the bundled tiny-phi3 is meant for local dry-runs"
        )


def _check_data(spec: JobSpec, model: ModelInfo, target: str, data: list[DataFile], hp: dict, v: Verdict) -> None:
    for d in data:
        if not d.local and spec.data.format:
            v.ok = False
            v.reasons.append(
                f"data.{d.role}: data.format converts local files; {d.ref} is a URI and would be used "
                "unconverted (convert it with `azft data convert` and give the result)"
            )
        if not d.local:
            continue
        from azft.safe_yaml import path_problem

        problem = path_problem(d.path)
        if problem:
            v.ok = False
            where = f" (resolved to {d.path})" if problem == "does not exist" else ""
            v.reasons.append(f"data.{d.role}: {d.ref} {problem}{where}")
            continue
        if d.source_error:
            v.ok = False
            v.reasons.append(f"data.{d.role}: {d.ref} could not be converted from {spec.data.format}: {d.source_error}")
            continue
        if d.source and d.source["skipped"]:
            from azft.data.source import skipped_reason

            v.ok = False
            v.reasons.append(f"data.{d.role}: " + skipped_reason(d.ref, d.source, spec.task))
        try:
            from azft.data import check_file
        except ImportError:  # data checks not installed in this build
            continue
        report = check_file(
            d.path,
            spec.task,
            model=model.id if model.in_catalog else None,
            backend="maas" if target == "maas" else None,
            epochs=hp["epochs"],
            max_tokens=hp["max_seq_length"],
        )
        d.report = report.to_dict()
        if not report.ok:
            v.ok = False
            n = len(report.errors)
            first = report.errors[0].render() if report.errors else ""
            what = f"{d.ref} (converted to {d.path})" if d.source else d.ref
            v.reasons.append(
                f"data.{d.role}: {what} has {d.report.get('error_count', n)} error(s); first: {first}"
                f" (run `azft data check {d.path if d.source else d.ref} --task {spec.task}` for all)"
            )
        for w in report.warning_lines():
            v.warnings.append(f"data.{d.role}: {w}")


# ----------------------------------------------------------------------------------------------------------------
# Estimates
# ----------------------------------------------------------------------------------------------------------------


def _train_tokens(plan: Plan) -> tuple[Optional[int], str]:
    d = plan.data_file("train")
    if d is None:
        return None, "unknown"
    rep = d.report or {}
    stats = rep.get("stats") or {}
    for key in ("billing_tokens_per_epoch", "total_tokens", "tokens"):
        val = stats.get(key)
        if isinstance(val, (int, float)):
            exact = bool(stats.get("token_count_exact"))
            return int(val), "exact (model tokenizer)" if exact else "estimated"
    if d.size:
        return d.size // 4, "estimated from file size (~4 bytes per token)"
    return None, "unknown (remote data)"


def estimate(plan: Plan, cat: Catalog, prices: dict, prices_source: Optional[str]) -> dict:
    spec, hp, model = plan.spec, plan.hyperparameters, plan.model
    tokens, how = _train_tokens(plan)
    epochs = hp["epochs"]
    out: dict[str, Any] = {
        "label": "ESTIMATE",
        "training_tokens_per_epoch": tokens,
        "token_count": how,
        "epochs": epochs,
    }
    billed = tokens * epochs if tokens is not None else None
    out["training_tokens_total"] = billed
    if plan.target == "maas":
        table = {**cat.raw.get("maas_price_per_1k_tokens", {}), **(prices.get("maas_price_per_1k_tokens") or {})}
        price = table.get(model.id)
        out["price_per_1k_tokens"] = price
        out["price_source"] = (
            prices_source if price is not None and prices_source else ("catalog" if price is not None else None)
        )
        if price is not None and billed is not None:
            out["cost_usd"] = round(billed / 1000 * float(price), 2)
        else:
            out["cost_usd"] = None
            out["cost_note"] = (
                "Azure publishes Phi fine-tuning prices only in the portal; pass --prices prices.yaml "
                "(see examples/prices.yaml) for a cost"
            )
        out["formula"] = "training tokens × epochs × price per token (no charge for queue time or failed jobs)"
        out["after_training"] = (
            "a deployed fine-tuned model bills hourly whether called or not, and is deleted after 15 idle days"
        )
    elif plan.target == "maap":
        c = spec.compute
        skus = {**cat.skus, **(prices.get("skus") or {})}
        sku = skus.get(c.instance_type or "", {})
        gpus_per_node = c.gpus_per_node or sku.get("gpus") or 1
        gpus = gpus_per_node * c.instance_count
        per_gpu = cat.throughput_per_gpu(model.parameters_b) * (0.6 if spec.method == "full" else 1.0)
        out.update(
            {
                "instance_type": c.instance_type,
                "instance_count": c.instance_count,
                "gpus": gpus,
                "assumed_tokens_per_second_per_gpu": per_gpu,
            }
        )
        if billed is not None:
            hours = billed / (per_gpu * gpus) / 3600 + 0.25  # + provisioning and image pull
            out["hours"] = round(hours, 2)
            price = sku.get("price_per_hour")
            out["price_per_node_hour"] = price
            out["price_source"] = prices_source or "catalog list price (eastus, pay-as-you-go; assumed)"
            out["cost_usd"] = round(hours * c.instance_count * price, 2) if price else None
            out["formula"] = (
                "instance-hours × hourly price; hours = tokens × epochs ÷ (GPUs × tokens/s) + 0.25 h start-up"
            )
        out["idle_cost"] = "nothing while the cluster is scaled to 0 nodes"
        _memory(plan, cat, out, sku.get("gpu_memory_gb"), c.instance_type)
    else:
        out["cost_usd"] = 0.0
        out["note"] = "runs on this machine"
        _local_time(plan, out, billed)
        _memory(plan, cat, out, None, None)
    return out


def _local_time(plan: Plan, out: dict, tokens: Optional[int]) -> None:
    """Hours on this machine: tokens ÷ the tokens/s a completed local run measured here (else a stated guess)."""
    from azft import throughput

    spec = plan.spec
    device = throughput.device_of(spec.local.device)
    speed, source = throughput.local_speed(
        plan.model.id, spec.method, device, spec.local.num_processes, plan.model.parameters_b
    )
    out["tokens_per_second"] = speed
    out["tokens_per_second_source"] = source
    if tokens is not None:
        out["hours"] = round(tokens / speed / 3600, 3)
        out["formula"] = "hours = training tokens × epochs ÷ tokens per second"


def _memory(plan: Plan, cat: Catalog, out: dict, gpu_mem: Optional[float], sku: Optional[str]) -> None:
    mem = memory_estimate(plan, cat)
    if mem is None:
        return
    out["memory_per_gpu"] = mem
    if gpu_mem:
        out["gpu_memory_gb"] = gpu_mem
        if mem.get("total_gb", 0) > gpu_mem:  # the cheapest changes that make it fit, with their cost in time
            from azft.fit import advice
            from azft.memory import estimate_plan

            est, _ = estimate_plan(plan, cat)
            out["memory_advice"] = advice(plan, cat, est, gpu_mem, sku, base_hours=out.get("hours"))
    # a maap size whose GPUs do not hold the estimate is refused by _refuse_unfit, with the sizes that fit


def memory_estimate(plan: Plan, cat: Catalog, sku: Optional[str] = None) -> Optional[dict]:
    """Per-GPU memory of the plan's training configuration (on ``sku`` when given), term by term (azft/memory.py).

    A dict: ``total_gb``, ``terms`` ({name: {gb, formula, group}}), the architecture and setup it counted, or
    ``{"unknown": reason}`` when the model's architecture is not known.
    """
    from azft.memory import estimate_plan

    est, why = estimate_plan(plan, cat, sku)
    if est is None:
        return {"unknown": why}
    return est.to_dict()
