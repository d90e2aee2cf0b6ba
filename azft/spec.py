"""The job spec: one YAML file a user writes, validated with pydantic, every problem reported with file and line.

Only stdlib, pydantic and PyYAML (its C event parser, bounded: azft.safe_yaml) are imported here: `azft validate` must stay fast.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from azft.errors import Problem, SpecError
from azft.redact import SECRET_HINT, find_secret, is_secret_key, redact_text

from azft.data.tasks import TASKS

TASK_ALIASES = {"ner": "token-classification", "chat": "chat-completion", "qa": "question-answering"}
METHODS = ("lora", "qlora", "dora", "full")
BACKEND_NAMES = ("local", "maas", "maap", "mock")

Task = Literal[TASKS]  # type: ignore[valid-type]
JobStateName = Literal["Queued", "Preparing", "Running", "Finalizing"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, v: Any, info: Any) -> Any:
        """`epochs: true` is a mistake, not 1: a boolean is refused where a number is expected."""
        if isinstance(v, bool) and info.field_name in cls.model_fields:
            ann = cls.model_fields[info.field_name].annotation
            numeric_literal = _is_literal(ann) and all(type(a) is int for a in ann.__args__)
            if (
                ann in (int, float)
                or numeric_literal
                or (
                    getattr(ann, "__args__", None)
                    and set(ann.__args__) & {int, float}
                    and bool not in ann.__args__
                    and not _is_literal(ann)
                )
            ):
                raise ValueError(f"expected a number, got the boolean {str(v).lower()}")
        return v


def _is_literal(ann: Any) -> bool:
    return getattr(ann, "__origin__", None) is Literal


# Where data can come from besides a local file (Azure ML's URI forms; storage accounts over HTTPS)
_AZUREML_URI = re.compile(
    r"azureml://(?:"
    r"datastores/[A-Za-z0-9_]{1,255}/paths/\S+"
    r"|subscriptions/[0-9a-fA-F-]{36}/resource[gG]roups/[\w.()-]{1,90}/(?:providers/Microsoft\.MachineLearningServices/)?"
    r"workspaces/[\w-]{1,33}/datastores/[A-Za-z0-9_]{1,255}/paths/\S+"
    r"|(?:subscriptions/[0-9a-fA-F-]{36}/resource[gG]roups/[\w.()-]{1,90}/workspaces/[\w-]{1,33}/|registries/[\w-]{1,64}/)?"
    r"data/[A-Za-z0-9_.-]{1,255}/(?:versions/[\w.-]{1,64}|labels/latest)"
    r"|jobs/[A-Za-z0-9_-]{1,255}/outputs/[\w-]+(?:/paths/\S+)?"
    r")"
)
_STORAGE_URL = re.compile(
    r"(?:https://[a-z0-9]{3,24}\.(?:blob|dfs)\.core\.(?:windows\.net|chinacloudapi\.cn|usgovcloudapi\.net)/\S+"
    r"|(?:wasbs?|abfss?)://[a-z0-9-]{3,63}@[a-z0-9]{3,24}\.(?:blob|dfs)\.core\.(?:windows\.net|chinacloudapi\.cn|"
    r"usgovcloudapi\.net)/\S*)"
)
DATA_URI_FORMS = (
    "azureml://datastores/<datastore>/paths/<path>, azureml://subscriptions/.../workspaces/<ws>/"
    "datastores/<datastore>/paths/<path>, azureml://[registries/<r>/]data/<name>/versions/<v>, "
    "https://<account>.blob.core.windows.net/<container>/<path>, "
    "wasbs:// or abfss://<container>@<account>.(blob|dfs).core.windows.net/<path>"
)


def check_data_reference(value: str) -> str:
    """A data reference that names a URI must be one Azure ML can read; local paths pass through."""
    if not is_uri(value):
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            raise ValueError(
                f"{value.split('://')[0]}:// is not a data source azft or Azure ML reads; use a local "
                f"file or one of: {DATA_URI_FORMS}"
            )
        return value
    if value.startswith("azureml:"):
        if not _AZUREML_URI.fullmatch(value):
            raise ValueError(f"not a well-formed azureml:// data URI; expected one of: {DATA_URI_FORMS}")
    elif value.startswith("http://"):
        raise ValueError("http:// is not allowed for data: use https:// on an Azure Storage account")
    elif not _STORAGE_URL.fullmatch(value):
        raise ValueError(f"not an Azure Storage URL; data URLs are {DATA_URI_FORMS}")
    return value


class DataSpec(_Section):
    """Training data. Local files are checked, then uploaded once (content-addressed); `azureml://` URIs are used as is."""

    train: str = Field(
        description="Training file: a local JSONL path (relative to the spec; with `format`, any source that format reads) or an azureml:// / https:// URI."
    )
    validation: Optional[str] = Field(None, description="Validation file, same forms as `train`.")
    validation_split: Optional[float] = Field(
        None, gt=0, le=0.5, description="Hold out this fraction of `train` for validation (instead of `validation`)."
    )
    format: Optional[Literal["alpaca", "sharegpt", "prompt-completion", "openai", "hf-disk", "auto"]] = Field(
        None,
        description="Source format of local data files, converted to the task's format (chat-completion or "
        "text-generation) before the check and the upload: `alpaca`, `sharegpt`, `prompt-completion`, `openai`, "
        "`hf-disk` (a Hugging Face `save_to_disk` folder or a .parquet/.arrow file) or `auto` (detected from the "
        "first rows). Unset: the files are already in the task's format.",
    )

    @field_validator("train", "validation")
    @classmethod
    def _well_formed_reference(cls, v: Optional[str]) -> Optional[str]:
        return check_data_reference(v) if v else v

    @model_validator(mode="after")
    def _one_validation_source(self) -> "DataSpec":
        if self.validation and self.validation_split:
            raise ValueError("give either `validation` or `validation_split`, not both")
        return self


class Hyperparameters(_Section):
    """Training hyperparameters. Unset values take the model's registry defaults from the catalog."""

    epochs: int = Field(1, ge=1, le=100, description="Passes over the training data.")
    learning_rate: Optional[float] = Field(
        None, gt=0, le=1, description="Peak learning rate (catalog default when unset)."
    )
    batch_size: Optional[int] = Field(
        None, ge=1, le=1024, description="Examples per device per step (catalog default when unset)."
    )
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    max_seq_length: Optional[int] = Field(None, ge=16, le=131072, description="Longest training sequence in tokens.")
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0, le=1)
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Random seed (0 to 2^32-1, what numpy and torch accept).")
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    packing: bool = Field(True, description="Pack short examples into full sequences (no attention across examples).")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    gradient_checkpointing: bool = False
    save_steps: int = Field(
        50, ge=1, description="Checkpoint every N optimizer steps (a killed run resumes from the last one)."
    )
    logging_steps: int = Field(1, ge=1)


PHI3_MODULES = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")


class LoraSpec(_Section):
    """LoRA/QLoRA/DoRA adapter settings."""

    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1, le=4096)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: List[str] = Field(default_factory=lambda: ["qkv_proj", "o_proj"], min_length=1)


class DeepSpeedSpec(_Section):
    stage: Literal[0, 1, 2, 3] = Field(0, description="ZeRO stage; 0 turns DeepSpeed off.")
    offload: Literal["none", "optimizer", "parameters", "all"] = Field(
        "none", description="Offload to CPU: optimizer state (ZeRO>=1), parameters (ZeRO-3 only), or both."
    )

    @model_validator(mode="after")
    def _offload_needs_stage(self) -> "DeepSpeedSpec":
        if self.offload in ("parameters", "all") and self.stage != 3:
            raise ValueError("parameter offload needs ZeRO stage 3")
        if self.offload == "optimizer" and self.stage == 0:
            raise ValueError("optimizer offload needs a ZeRO stage (1, 2 or 3)")
        return self


class ComputeSpec(_Section):
    """Where training runs on a cluster (maap) or this machine (local)."""

    cluster: Optional[str] = Field(None, description="Azure ML compute cluster name (maap).")
    instance_type: Optional[str] = Field(None, description="VM size, e.g. Standard_NC24ads_A100_v4.")
    instance_count: int = Field(1, ge=1, le=64, description="Nodes (multi-node data parallel on maap).")
    gpus_per_node: Optional[int] = Field(
        None, ge=1, le=16, description="Processes per node (defaults to the SKU's GPUs)."
    )
    create_cluster: bool = Field(False, description="Create the cluster (min 0 nodes) when it does not exist.")
    low_priority: bool = False
    max_nodes: Optional[int] = Field(None, ge=1, le=100)
    pipeline: Literal["azft", "registry", "azure"] = Field(
        "azft",
        description="maap: azft's own components, Azure's registry chat_completion_pipeline, or Azure's "
        "managed fine-tuning job (the serverless FineTuningJob) on this cluster or these instance types.",
    )
    instance_types: list[str] = Field(
        default_factory=list,
        description="pipeline: azure without a cluster: the VM sizes Azure may run its managed job on.",
    )
    job_tier: Optional[Literal["Spot", "Basic", "Standard", "Premium"]] = Field(
        None, description="pipeline: azure: the queue tier of Azure's managed job (queueSettings.jobTier)."
    )
    deepspeed: DeepSpeedSpec = Field(default_factory=DeepSpeedSpec)

    @field_validator("cluster")
    @classmethod
    def _cluster_name(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,31}", v):
            raise ValueError("cluster names are 2-32 letters, digits and hyphens, starting with a letter")
        return v


class TrackingSpec(_Section):
    experiment: Optional[str] = Field(None, description="MLflow experiment (defaults to the spec's name).")
    tracking_uri: Optional[str] = Field(
        None, description="MLflow tracking URI (defaults to a local store under .azft/)."
    )


class OutputSpec(_Section):
    model_name: Optional[str] = Field(None, description="Registered model name (defaults to `<name>-<method>`).")

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", v):
            raise ValueError("model names use letters, digits, '-', '_' and '.'")
        return v


class AzureSpec(_Section):
    """The Azure ML workspace. Values may use ${ENV_VAR}; unset ones come from AZURE_* variables or config.json."""

    subscription_id: Optional[str] = None
    resource_group: Optional[str] = None
    workspace: Optional[str] = None
    region: Optional[str] = Field(None, description="Workspace region, checked against the model's serverless regions.")


class MaasSpec(_Section):
    allow_unavailable: bool = Field(
        False,
        description="Submit even when the catalog says serverless fine-tuning is retired or not offered for this model"
        " or region (for a workspace that still allows it).",
    )


class LocalSpec(_Section):
    num_processes: int = Field(1, ge=1, le=64, description="Training processes on this machine (DDP/DeepSpeed).")
    output_dir: Optional[str] = Field(
        None, description="Where the adapter/model is written (default .azft/jobs/<job>/outputs)."
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"


class FaultSpec(_Section):
    """A fault the mock backend injects."""

    kind: Literal["job_error", "http_error", "drop_connection", "slow_response", "cancel", "diverge"]
    state: JobStateName = Field("Running", description="job_error/cancel: the state at which it happens.")
    error: Literal[
        "quota_exceeded", "unauthorized", "model_not_available_in_region", "out_of_memory", "invalid_data"
    ] = Field("out_of_memory", description="job_error: which Azure error the job fails with.")
    status: int = Field(503, ge=400, le=599, description="http_error: the HTTP status returned.")
    route: str = Field("jobs", description="Requests whose path matches this regular expression are affected.")
    method: Optional[Literal["GET", "PUT", "POST", "DELETE", "PATCH"]] = None
    times: int = Field(1, ge=1, le=1000, description="How many matching requests are affected.")
    retry_after: Optional[float] = Field(None, ge=0, le=600)
    delay: float = Field(2.0, ge=0, le=600, description="slow_response: seconds added.")
    step: int = Field(
        10,
        ge=1,
        le=100_000,
        description="diverge: the step after which the job's training and evaluation loss rise instead of falling "
        "(the job still completes; rehearses early stopping and loss alerts).",
    )

    @field_validator("route")
    @classmethod
    def _route_compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"route is not a valid regular expression ({e})") from None
        return v


class MockSpec(_Section):
    target: Literal["maas", "maap"] = Field("maas", description="Which Azure path the mock backend exercises.")
    seconds_per_state: float = Field(1.0, ge=0, le=3600, description="Emulated time each job state lasts.")
    faults: List[FaultSpec] = Field(default_factory=list)
    roles: Optional[
        List[Literal["AzureML Data Scientist", "AzureML Compute Operator", "Storage Blob Data Contributor", "AcrPull"]]
    ] = Field(
        None,
        description="Rehearse an identity's role assignments: the emulated workspace allows only what these "
        "built-in roles allow and answers anything else with 403 AuthorizationFailed, as Azure does (default: "
        "everything). docs/roles.md lists what each azft action needs.",
    )


class BudgetSpec(_Section):
    """What a job (or a whole sweep) may cost and how long it may run."""

    max_usd: Optional[float] = Field(
        None,
        gt=0,
        description="Refuse to submit when the estimated cost exceeds this many US dollars (a sweep: the "
        "sum over its trials). An estimate without a price is refused too: pass --prices.",
    )
    max_hours: Optional[float] = Field(
        None,
        gt=0,
        le=24 * 30,
        description="Refuse when the estimated hours exceed this (a sweep: per trial); sets the "
        "cluster job's own time limit (`limits.timeout` of the training step) and `azft wait` cancels a job still "
        "running this long after it was created (the only limit on serverless, which has none of its own).",
    )

    @model_validator(mode="after")
    def _something(self) -> "BudgetSpec":
        if self.max_usd is None and self.max_hours is None:
            raise ValueError("set max_usd, max_hours or both")
        return self


class EarlyStoppingSpec(_Section):
    """Median stopping: a running trial whose best value so far is worse than the median of the other trials' running
    averages at the same step is cancelled (lower is better)."""

    policy: Literal["median"] = Field("median", description="median: the median stopping rule.")
    metric: Literal["eval_loss", "train_loss"] = Field(
        "eval_loss", description="The metric compared (lower is better)."
    )
    delay_steps: int = Field(10, ge=0, description="No trial is stopped before it has reported past this step.")
    min_trials: int = Field(
        3,
        ge=2,
        le=1000,
        description="Compare only when at least this many trials (the one judged "
        "included) have reported the metric at that step.",
    )


class SweepSpec(_Section):
    """Many jobs from one spec: a grid, or a seeded random sample, over any spec field by its dotted path."""

    strategy: Literal["grid", "random"] = Field(
        "grid",
        description="grid: every combination; random: max_trials "
        "combinations drawn with `seed` (the same seed, the same trials).",
    )
    parameters: Dict[str, List[Any]] = Field(
        min_length=1,
        description="Dotted spec path → the values to try, e.g. `hyperparameters.learning_rate: [1e-4, "
        "2e-4]`, `lora.r: [8, 16]`, `method: [lora, dora]`, `model: [...]`.",
    )
    max_trials: Optional[int] = Field(None, ge=1, le=1000, description="At most this many trials (random: required).")
    max_concurrent: int = Field(4, ge=1, le=100, description="Trials submitted at once.")
    seed: int = Field(0, ge=0, description="random: the sampling seed.")
    early_stopping: Optional[EarlyStoppingSpec] = Field(
        None,
        description="Cancel trials that fall behind while `azft wait SWEEP` watches them (backends that report "
        "per-step metrics: mock, local, maas/maap through run history).",
    )

    @field_validator("parameters")
    @classmethod
    def _paths(cls, v: Dict[str, List[Any]]) -> Dict[str, List[Any]]:
        for path, values in v.items():
            if path.split(".")[0] in ("name", "sweep", "budget"):
                raise ValueError(f"{path}: a sweep cannot vary name, sweep or budget")
            if not values:
                raise ValueError(f"{path}: give at least one value")
        return v

    @model_validator(mode="after")
    def _random_needs_trials(self) -> "SweepSpec":
        if self.strategy == "random" and self.max_trials is None:
            raise ValueError("strategy random needs max_trials")
        return self


class JobSpec(_Section):
    """An azft job spec: one file, any backend."""

    name: str = Field(description="Job name: lowercase letters, digits and hyphens.")
    description: Optional[str] = Field(None, description="Free text, kept with the run in MLflow.")
    model: str = Field(
        description="Catalog id (see `azft catalog`), registry asset id, local model directory or hub id."
    )
    task: Task = Field(
        "chat-completion",
        description="What the model learns; decides the data format. Short "
        "names are accepted and read as the full one: "
        + ", ".join(f"`{a}` = {t}" for a, t in TASK_ALIASES.items())
        + " (plans, jobs and MLflow show the "
        "full name).",
    )
    data: DataSpec = Field(description="Training and validation data.")
    method: Literal["lora", "qlora", "dora", "full"] = Field(
        "lora",
        description="lora/dora: small adapters; qlora: adapters on 4-bit weights (CUDA only); full: all weights.",
    )
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters, description="Training hyperparameters.")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="Adapter settings for lora/qlora/dora.")
    compute: ComputeSpec = Field(
        default_factory=ComputeSpec, description="Cluster and DeepSpeed settings (maap, local)."
    )
    tracking: TrackingSpec = Field(default_factory=TrackingSpec, description="MLflow experiment and tracking URI.")
    output: OutputSpec = Field(default_factory=OutputSpec, description="The registered model.")
    tags: Dict[str, str] = Field(default_factory=dict, description="Tags for the Azure job and the MLflow run.")
    azure: AzureSpec = Field(default_factory=AzureSpec, description="The Azure ML workspace (maas, maap).")
    maas: MaasSpec = Field(default_factory=MaasSpec, description="Serverless backend settings.")
    local: LocalSpec = Field(default_factory=LocalSpec, description="Local backend settings.")
    mock: MockSpec = Field(default_factory=MockSpec, description="Mock backend settings: emulated path, clock, faults.")
    budget: Optional[BudgetSpec] = Field(
        None,
        description="Cost and time limits: submit refuses an estimate above "
        "them; the job's time limit and `azft wait` enforce max_hours.",
    )
    sweep: Optional[SweepSpec] = Field(
        None,
        description="Many trials from this spec (`azft plan` shows each, `azft submit` submits them; docs/sweeps.md).",
    )

    # Where the spec came from and the line of every key; not part of the schema.
    _source: Optional[Path] = None
    _lines: Dict[tuple, int] = {}

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", v):
            raise ValueError("use 1-40 lowercase letters, digits and hyphens, starting with a letter or digit")
        return v

    @field_validator("task", mode="before")
    @classmethod
    def _task_alias(cls, v: Any) -> Any:
        return TASK_ALIASES.get(v, v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _sweep_paths_exist(self) -> "JobSpec":
        for path in self.sweep.parameters if self.sweep else {}:
            problem = sweep_path_problem(path)
            if problem:
                raise ValueError(f"sweep.parameters: {problem}")
        return self

    @property
    def source(self) -> Optional[Path]:
        return self._source

    @property
    def base_dir(self) -> Path:
        return self._source.parent if self._source else Path.cwd()

    def resolve_path(self, value: str) -> str:
        """A data/model reference as the backends see it: URIs unchanged, local paths absolute (relative to the spec)."""
        if is_uri(value):
            return value
        p = Path(value).expanduser()
        p = p if p.is_absolute() else self.base_dir / p
        try:
            return str(p.resolve())
        except (OSError, RuntimeError):  # a symlink loop: keep the path; the data checks say what it is
            return os.path.abspath(p)

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    def canonical(self) -> dict:
        d = self.model_dump(mode="json")
        for key in ("budget", "sweep"):  # unset sections leave job names as they were before they existed
            if d.get(key) is None:
                d.pop(key, None)
        return d

    def content_hash(self, extra: str = "") -> str:
        """A stable hash of the resolved spec (plus e.g. data file hashes): the basis of idempotent job names."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":")) + extra
        return hashlib.sha256(blob.encode()).hexdigest()


SWEEP_BACKEND_KEY = "backend"


def sweep_path_problem(path: str) -> Optional[str]:
    """Why a sweep parameter's dotted path names no spec field (None when it does: a field, a key under a mapping
    such as `tags.team`, or `backend`, the backend each trial runs on)."""
    if path == SWEEP_BACKEND_KEY:
        return None
    model: Any = JobSpec
    parts = path.split(".")
    for i, part in enumerate(parts):
        fields = getattr(model, "model_fields", None)
        if fields is None:  # a mapping (tags): any key below it
            return None if model is dict and i == len(parts) - 1 else f"{path}: no such spec field"
        if part not in fields:
            close = difflib.get_close_matches(part, list(fields), n=1, cutoff=0.6)
            return f"{path}: no such spec field" + (
                f" (did you mean `{'.'.join(parts[:i] + [close[0]])}`?)" if close else ""
            )
        ann = fields[part].annotation
        is_list = getattr(ann, "__origin__", None) in (list, List)
        inner = [] if is_list else [a for a in (ann, *getattr(ann, "__args__", ())) if isinstance(a, type)]
        model = next((a for a in inner if issubclass(a, BaseModel)), None) or (
            dict if getattr(ann, "__origin__", None) in (dict, Dict) else None
        )
        if model is None and i < len(parts) - 1:
            return f"{path}: `{'.'.join(parts[: i + 1])}` has no fields below it"
    if isinstance(model, type) and issubclass(model, BaseModel):
        return (
            f"{path}: `{path}` is a section; sweep one of its fields (e.g. `{path}.{next(iter(model.model_fields))}`)"
        )
    return None


def is_uri(value: str) -> bool:
    return bool(re.match(r"^(azureml|https?|wasbs?|abfss?)://", value))


def json_schema() -> dict:
    schema = JobSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://azft.dev/schema/jobspec.json"
    schema["title"] = "azft job spec"
    task = schema["properties"]["task"]
    task["enum"] = [*task["enum"], *TASK_ALIASES]  # editors accept what `azft validate` accepts
    return schema


# --------------------------------------------------------------------------------------------------------------------
# Loading with line numbers
# --------------------------------------------------------------------------------------------------------------------

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def looks_secret_key(key: str) -> bool:
    return is_secret_key(str(key))


def looks_secret_value(value: str) -> Optional[str]:
    return find_secret(value)


class _Located:
    """Line numbers of every key path in the YAML document."""

    def __init__(self) -> None:
        self.lines: dict[tuple, int] = {}

    def line_for(self, loc: tuple) -> Optional[int]:
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


class _Walk:
    """One pass over the loaded document: ${VAR} interpolation and the refusal of secrets, with lines."""

    def __init__(self, located: _Located, problems: list[Problem], file: str, env: dict):
        self.located, self.problems, self.file, self.env = located, problems, file, env
        self.interpolated: set[tuple] = set()

    def secret(self, message: str, path: tuple) -> None:
        self.problems.append(
            Problem(message, file=self.file, line=self.located.line_for(path), field=_dotted(path), hint=SECRET_HINT)
        )

    def value(self, node: Any, path: tuple) -> Any:
        if isinstance(node, dict):
            return self.mapping(node, path)
        if isinstance(node, list):
            return [self.value(item, path + (i,)) for i, item in enumerate(node)]
        if isinstance(node, str):
            return self.string(node, path)
        return node

    def mapping(self, node: dict, path: tuple) -> dict:
        out = {}
        for key, value in node.items():
            if not isinstance(key, str):
                self.problems.append(
                    Problem(
                        f"keys must be strings, got {key!r}"[:120],
                        file=self.file,
                        line=self.located.line_for(path + (key,)),
                        field=_dotted(path + (str(key),)),
                    )
                )
                continue
            what = find_secret(key)
            if what:
                self.secret(f"a key holds {what}", path + ("***",))
                continue
            if is_secret_key(key) and _holds_value(value):
                self.secret(f"`{key}` looks like a secret (its value is not shown)", path + (key,))
                continue
            out[key] = self.value(value, path + (key,))
        return out

    def string(self, value: str, path: tuple) -> str:
        if "${" in value:
            value = self.interpolate(value, path)
        what = find_secret(value)
        if what:
            self.secret(f"this value holds {what} (not shown)", path)
            return ""
        return value

    def interpolate(self, value: str, path: tuple) -> str:
        def repl(m: re.Match) -> str:
            var, default = m.group(1), m.group(2)
            if is_secret_key(var):
                self.secret(f"`${{{var}}}` would put a secret into the spec", path)
                return ""
            if var in self.env:
                return self.env[var]
            if default is not None:
                return default
            self.problems.append(
                Problem(
                    f"environment variable {var} is not set",
                    file=self.file,
                    line=self.located.line_for(path),
                    field=_dotted(path),
                    hint=f"export {var}=... or write `${{{var}:-default}}`",
                )
            )
            return ""

        out = _ENV_RE.sub(repl, value)
        if out != value:
            self.interpolated.add(path)
        return out


def _holds_value(value: Any) -> bool:
    """A secret-named key with something in it (``use_auth_token: false`` and empty values say nothing secret)."""
    if value is None or isinstance(value, bool) or value == "":
        return False
    if isinstance(value, (list, dict)):
        return any(_holds_value(v) for v in (value.values() if isinstance(value, dict) else value))
    return True


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc: tuple) -> Optional[type[BaseModel]]:
    """The pydantic model class that owns the mapping at `loc` (for unknown-key suggestions)."""
    model: Any = JobSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nxt = None
        for c in candidates:
            if isinstance(c, type) and issubclass(c, BaseModel):
                nxt = c
            for inner in getattr(c, "__args__", ()) or ():
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    nxt = inner
        if nxt is None:
            return None
        model = nxt
    return model


def _shown_input(err: dict, loc: tuple, interpolated: set) -> str:
    """The offending input as the message shows it: never a value that came from the environment, never long."""
    if any(loc[: i + 1] in interpolated for i in range(len(loc))):
        return "a value from the environment (not shown)"
    got = err.get("input")
    if isinstance(got, float) and got != got:
        return "NaN, which is not a number"
    text = repr(got)
    return redact_text(text if len(text) <= 80 else text[:77] + "...")


def _error_to_problem(err: dict, file: str, located: _Located, interpolated: Optional[set] = None) -> Problem:
    interpolated = interpolated or set()
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal[", "union["))))
    line = located.line_for(loc)
    field = _dotted(loc) or "(top level)"
    etype = err["type"]
    msg = err["msg"]
    hint = None
    if etype == "extra_forbidden":
        key = str(loc[-1])
        owner = _model_at(loc[:-1])
        known = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        msg = f"unknown key `{key}`"
        hint = f"did you mean `{close[0]}`?" if close else (f"known keys here: {', '.join(known)}" if known else None)
    elif etype == "missing":
        msg = f"`{loc[-1]}` is required"
        owner = _model_at(loc[:-1])
        f = owner.model_fields.get(str(loc[-1])) if owner else None
        if f is not None and f.description:
            hint = f.description
    elif etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        got = err.get("input")
        options = re.findall(r"'([^']+)'", expected) or re.findall(r"(\d+)", expected)
        close = difflib.get_close_matches(str(got)[:100], options, n=1, cutoff=0.5) if options else []
        msg = f"{_shown_input(err, loc, interpolated)} is not allowed; expected one of {expected}"
        hint = f"did you mean {close[0]!r}?" if close else None
    elif etype.startswith(("int_", "float_", "bool_", "string_", "dict_", "list_", "model_")) and etype.endswith(
        ("_type", "_parsing", "_attributes_type")
    ):
        msg = f"{msg} (got {_shown_input(err, loc, interpolated)})"
    elif etype == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif etype == "finite_number" or (isinstance(err.get("input"), float) and err["input"] != err["input"]):
        msg = f"{_shown_input(err, loc, interpolated)}; give a finite number"
    return Problem(redact_text(msg), file=file, line=line, field=field, hint=hint)


def _yaml_problem(e: Exception, text: str, file: str) -> SpecError:
    """A YAML syntax error (or a broken limit) as a SpecError naming the line."""
    from azft.safe_yaml import YamlLimitError

    if isinstance(e, YamlLimitError):
        return SpecError(f"{file}: invalid YAML", problems=[Problem(e.message, file=file, line=e.line, hint=e.hint)])
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    line = mark.line + 1 if mark else None
    problem = " ".join(str(getattr(e, "problem", None) or e).split())[:200]
    lines = text.splitlines()
    bad = lines[line - 1] if line and 0 < line <= len(lines) else ""
    if "\t" in bad[: len(bad) - len(bad.lstrip())] or "\t" in problem:
        hint = "YAML does not allow tabs for indentation"
    else:
        hint = "check indentation, quotes, brackets and colons near this line"
    return SpecError(
        f"{file}: invalid YAML",
        problems=[Problem(f"YAML syntax error: {redact_text(problem)}", file=file, line=line, hint=hint)],
    )


def parse_spec_text(text: str, file: str = "<spec>", env: Optional[dict] = None) -> JobSpec:
    """Parse and validate spec text; raises SpecError listing every problem with its line.

    Loading is bounded (size, nesting depth, values, aliases: see azft.safe_yaml), so a hostile file fails fast."""
    import yaml

    from azft.safe_yaml import MAX_BYTES, YamlLimitError, load_yaml

    env = dict(os.environ if env is None else env)
    if len(text) > MAX_BYTES:
        raise SpecError(
            f"{file}: too large",
            problems=[
                Problem(
                    f"the spec is {len(text) / 1e6:.1f} MB; a spec may be at most {MAX_BYTES // (1024 * 1024)} MB",
                    file=file,
                )
            ],
        )
    try:
        loaded = load_yaml(text)
    except (yaml.YAMLError, YamlLimitError) as e:
        raise _yaml_problem(e, text, file) from None
    doc = loaded.value
    if doc is None:
        raise SpecError(
            f"{file}: the spec is empty",
            problems=[Problem("the spec is empty", file=file, line=1, hint="run `azft init` for a starting point")],
        )
    if not isinstance(doc, dict):
        kind = {list: "list", str: "string"}.get(type(doc), type(doc).__name__)
        raise SpecError(
            f"{file}: not a mapping",
            problems=[Problem(f"a spec is a YAML mapping (key: value lines), got a {kind}", file=file, line=1)],
        )

    located = _Located()
    located.lines.update(loaded.lines)
    problems: list[Problem] = []
    walk = _Walk(located, problems, file, env)
    plain = walk.value(doc, ())
    spec = None
    try:
        spec = JobSpec.model_validate(plain)
    except ValidationError as e:
        for err in e.errors(include_url=False):
            problems.append(_error_to_problem(err, file, located, walk.interpolated))
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        n = len(problems)
        raise SpecError(f"{file}: {n} problem{'s' if n != 1 else ''} found", problems=problems)
    assert spec is not None
    spec._lines = located.lines  # type: ignore[attr-defined]
    return spec


def load_spec(path: str | os.PathLike, env: Optional[dict] = None) -> JobSpec:
    """Load a spec file. Raises SpecError (exit code 2) naming file, line and field for every problem.

    Only regular files are read (a FIFO, a device or a directory is refused before reading), at most 16 MB."""
    from azft.safe_yaml import read_regular_file

    p = Path(path)
    shown = str(path)
    try:
        raw = read_regular_file(p, what="spec")
    except FileNotFoundError:
        raise SpecError(
            f"{shown}: no such file",
            problems=[Problem("no such file", file=shown, hint="run `azft init` to write a starting spec")],
        ) from None
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SpecError(f"{shown}: cannot be read as a spec", problems=[Problem(reason, file=shown)]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpecError(
            f"{shown}: not UTF-8", problems=[Problem(f"invalid UTF-8 byte at offset {e.start}", file=shown, line=line)]
        ) from None
    spec = parse_spec_text(text, file=shown, env=env)
    spec._source = p.resolve()
    return spec


def line_of(spec: JobSpec, *loc: Any) -> Optional[int]:
    """The line where a field was written in the spec file (None if it came from defaults)."""
    lines = getattr(spec, "_lines", None)
    if not lines:
        return None
    key = tuple(loc)
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return None


def was_set(spec: JobSpec, *loc: Any) -> bool:
    lines = getattr(spec, "_lines", None) or {}
    return tuple(loc) in lines
