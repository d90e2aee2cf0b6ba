"""The job spec: one YAML file a user writes, validated with pydantic, every problem reported with file and line.

Only stdlib, pydantic and ruamel.yaml are imported here: `azft validate` must stay fast.
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

from azft.data.tasks import TASKS
TASK_ALIASES = {"ner": "token-classification", "chat": "chat-completion", "qa": "question-answering"}
METHODS = ("lora", "qlora", "dora", "full")
BACKEND_NAMES = ("local", "maas", "maap", "mock")

Task = Literal[TASKS]  # type: ignore[valid-type]
JobStateName = Literal["Queued", "Preparing", "Running", "Finalizing"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


class DataSpec(_Section):
    """Training data. Local files are checked, then uploaded once (content-addressed); `azureml://` URIs are used as is."""

    train: str = Field(description="Training file: a local JSONL path (relative to the spec; with `format`, any source that format reads) or an azureml:// / https:// URI.")
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

    @model_validator(mode="after")
    def _one_validation_source(self) -> "DataSpec":
        if self.validation and self.validation_split:
            raise ValueError("give either `validation` or `validation_split`, not both")
        return self


class Hyperparameters(_Section):
    """Training hyperparameters. Unset values take the model's registry defaults from the catalog."""

    epochs: int = Field(1, ge=1, le=100, description="Passes over the training data.")
    learning_rate: Optional[float] = Field(None, gt=0, le=1, description="Peak learning rate (catalog default when unset).")
    batch_size: Optional[int] = Field(None, ge=1, le=1024, description="Examples per device per step (catalog default when unset).")
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    max_seq_length: Optional[int] = Field(None, ge=16, le=131072, description="Longest training sequence in tokens.")
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0, le=1)
    seed: int = Field(42, ge=0)
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    packing: bool = Field(True, description="Pack short examples into full sequences (no attention across examples).")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    gradient_checkpointing: bool = False
    save_steps: int = Field(50, ge=1, description="Checkpoint every N optimizer steps (a killed run resumes from the last one).")
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
    gpus_per_node: Optional[int] = Field(None, ge=1, le=16, description="Processes per node (defaults to the SKU's GPUs).")
    create_cluster: bool = Field(False, description="Create the cluster (min 0 nodes) when it does not exist.")
    low_priority: bool = False
    max_nodes: Optional[int] = Field(None, ge=1, le=100)
    pipeline: Literal["azft", "registry"] = Field(
        "azft", description="maap: azft's own components, or Azure's registry chat_completion_pipeline."
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
    tracking_uri: Optional[str] = Field(None, description="MLflow tracking URI (defaults to a local store under .azft/).")


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
    output_dir: Optional[str] = Field(None, description="Where the adapter/model is written (default .azft/jobs/<job>/outputs).")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class FaultSpec(_Section):
    """A fault the mock backend injects."""

    kind: Literal["job_error", "http_error", "drop_connection", "slow_response", "cancel"]
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


class MockSpec(_Section):
    target: Literal["maas", "maap"] = Field("maas", description="Which Azure path the mock backend exercises.")
    seconds_per_state: float = Field(1.0, ge=0, le=3600, description="Emulated time each job state lasts.")
    faults: List[FaultSpec] = Field(default_factory=list)
    roles: Optional[List[Literal["AzureML Data Scientist", "AzureML Compute Operator", "Storage Blob Data Contributor",
                                 "AcrPull"]]] = Field(
        None, description="Rehearse an identity's role assignments: the emulated workspace allows only what these "
        "built-in roles allow and answers anything else with 403 AuthorizationFailed, as Azure does (default: "
        "everything). docs/roles.md lists what each azft action needs.")


class JobSpec(_Section):
    """An azft job spec: one file, any backend."""

    name: str = Field(description="Job name: lowercase letters, digits and hyphens.")
    description: Optional[str] = Field(None, description="Free text, kept with the run in MLflow.")
    model: str = Field(description="Catalog id (see `azft catalog`), registry asset id, local model directory or hub id.")
    task: Task = Field("chat-completion", description="What the model learns; decides the data format (`ner` = token-classification).")
    data: DataSpec = Field(description="Training and validation data.")
    method: Literal["lora", "qlora", "dora", "full"] = Field(
        "lora", description="lora/dora: small adapters; qlora: adapters on 4-bit weights (CUDA only); full: all weights.")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters, description="Training hyperparameters.")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="Adapter settings for lora/qlora/dora.")
    compute: ComputeSpec = Field(default_factory=ComputeSpec, description="Cluster and DeepSpeed settings (maap, local).")
    tracking: TrackingSpec = Field(default_factory=TrackingSpec, description="MLflow experiment and tracking URI.")
    output: OutputSpec = Field(default_factory=OutputSpec, description="The registered model.")
    tags: Dict[str, str] = Field(default_factory=dict, description="Tags for the Azure job and the MLflow run.")
    azure: AzureSpec = Field(default_factory=AzureSpec, description="The Azure ML workspace (maas, maap).")
    maas: MaasSpec = Field(default_factory=MaasSpec, description="Serverless backend settings.")
    local: LocalSpec = Field(default_factory=LocalSpec, description="Local backend settings.")
    mock: MockSpec = Field(default_factory=MockSpec, description="Mock backend settings: emulated path, clock, faults.")

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
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    def canonical(self) -> dict:
        return self.model_dump(mode="json")

    def content_hash(self, extra: str = "") -> str:
        """A stable hash of the resolved spec (plus e.g. data file hashes): the basis of idempotent job names."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":")) + extra
        return hashlib.sha256(blob.encode()).hexdigest()


def is_uri(value: str) -> bool:
    return bool(re.match(r"^(azureml|https?|wasbs?|abfss?)://", value))


def json_schema() -> dict:
    schema = JobSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://azft.dev/schema/jobspec.json"
    schema["title"] = "azft job spec"
    return schema


# --------------------------------------------------------------------------------------------------------------------
# Loading with line numbers
# --------------------------------------------------------------------------------------------------------------------

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_SECRET_KEY_PARTS = {
    "key", "keys", "secret", "secrets", "token", "tokens", "password", "passwd", "pwd", "sas", "credential",
    "credentials", "apikey", "accountkey", "connectionstring", "clientsecret",
}
_SECRET_VALUE_PATTERNS = [
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"), "a JSON Web Token"),
    (re.compile(r"(?i)AccountKey=[A-Za-z0-9+/=]{20,}"), "a storage account key"),
    (re.compile(r"(?i)SharedAccessSignature=|(?:[?&]|^)sig=[A-Za-z0-9%+/=]{20,}"), "a SAS token"),
    (re.compile(r"(?i)(DefaultEndpointsProtocol|Endpoint)=[^;]+;.*(Key|SharedAccessKey)=") , "a connection string"),
    (re.compile(r"^[A-Za-z0-9+/]{86}==$"), "a storage account key"),
    (re.compile(r"^[A-Za-z0-9~._-]{3}8Q~[A-Za-z0-9~._-]{31,}$"), "an Entra ID client secret"),
    (re.compile(r"^(sk|pk)-[A-Za-z0-9_-]{20,}$"), "an API key"),
]
SECRET_HINT = (
    "secrets never go in a spec: sign in with `az login`, a managed identity or GitHub OIDC (DefaultAzureCredential), "
    "or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET in the environment or a Key Vault"
)


def _key_parts(key: str) -> set[str]:
    parts = re.split(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])", key)
    lowered = {p.lower() for p in parts if p}
    lowered.add(re.sub(r"[_\-.\s]", "", key.lower()))
    return lowered


def looks_secret_key(key: str) -> bool:
    return bool(_key_parts(str(key)) & _SECRET_KEY_PARTS)


def looks_secret_value(value: str) -> Optional[str]:
    for pattern, what in _SECRET_VALUE_PATTERNS:
        if pattern.search(value):
            return what
    return None


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


def _to_plain(node: Any, path: tuple, located: _Located, problems: list[Problem], file: str, env: dict) -> Any:
    """Convert ruamel's round-trip tree to plain Python, recording lines, interpolating ${VAR}, refusing secrets."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out = {}
        for key in node:
            try:
                kline = node.lc.data[key][0]
            except (KeyError, TypeError, ValueError):
                kline = (located.lines.get(path, 0) or 1) - 1
            located.lines[path + (key,)] = kline + 1
            value = node[key]
            if not isinstance(key, str):
                problems.append(Problem(f"keys must be strings, got {key!r}", file=file, line=kline + 1,
                                        field=_dotted(path + (str(key),))))
                continue
            if looks_secret_key(key) and value not in (None, "") and not isinstance(value, (dict, list, bool)):
                problems.append(Problem(f"`{key}` looks like a secret", file=file, line=kline + 1,
                                        field=_dotted(path + (key,)), hint=SECRET_HINT))
                continue
            out[key] = _to_plain(value, path + (key,), located, problems, file, env)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, item in enumerate(node):
            try:
                line = node.lc.data[i][0] + 1
            except (KeyError, IndexError, TypeError):
                line = located.lines.get(path)
            if line:
                located.lines[path + (i,)] = line
            out_list.append(_to_plain(item, path + (i,), located, problems, file, env))
        return out_list
    if isinstance(node, str):
        line = located.line_for(path)
        value = str(node)

        def repl(m: re.Match) -> str:
            var, default = m.group(1), m.group(2)
            if looks_secret_key(var):
                problems.append(Problem(f"`${{{var}}}` would put a secret into the spec", file=file, line=line,
                                        field=_dotted(path), hint=SECRET_HINT))
                return ""
            if var in env:
                return env[var]
            if default is not None:
                return default
            problems.append(Problem(f"environment variable {var} is not set", file=file, line=line, field=_dotted(path),
                                    hint=f"export {var}=... or write `${{{var}:-default}}`"))
            return ""

        value = _ENV_RE.sub(repl, value)
        what = looks_secret_value(value)
        if what:
            problems.append(Problem(f"this value looks like {what}", file=file, line=line, field=_dotted(path),
                                    hint=SECRET_HINT))
            return ""
        return value
    # ruamel scalar types (ScalarFloat, ScalarInt, ScalarBoolean) → plain Python
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


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


def _error_to_problem(err: dict, file: str, located: _Located) -> Problem:
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
        close = difflib.get_close_matches(str(got), options, n=1, cutoff=0.5) if options else []
        msg = f"{got!r} is not allowed; expected one of {expected}"
        hint = f"did you mean {close[0]!r}?" if close else None
    elif etype.startswith(("int_", "float_", "bool_", "string_", "dict_", "list_", "model_")) and etype.endswith(
        ("_type", "_parsing", "_attributes_type")
    ):
        msg = f"{msg} (got {err.get('input')!r})"
    elif etype == "value_error":
        msg = msg.removeprefix("Value error, ")
    return Problem(msg, file=file, line=line, field=field, hint=hint)


def parse_spec_text(text: str, file: str = "<spec>", env: Optional[dict] = None) -> JobSpec:
    """Parse and validate spec text; raises SpecError listing every problem with its line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    env = dict(os.environ if env is None else env)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = (e.problem or str(e)).strip()
        hint = None
        if "duplicate" in str(e).lower() or "found duplicate key" in problem:
            hint = "each key may appear once"
        elif "\t" in text.splitlines()[line - 1 if line else 0] if text.splitlines() else False:
            hint = "YAML does not allow tabs for indentation"
        else:
            hint = "check indentation, quotes and colons near this line"
        raise SpecError(f"{file}: invalid YAML", problems=[Problem(f"YAML syntax error: {problem}", file=file,
                                                                      line=line, hint=hint)]) from None
    except YAMLError as e:  # pragma: no cover - unmarked errors are rare
        raise SpecError(f"{file}: invalid YAML", problems=[Problem(f"YAML error: {e}", file=file)]) from None

    from ruamel.yaml.comments import CommentedMap

    if doc is None:
        raise SpecError(f"{file}: the spec is empty", problems=[Problem("the spec is empty", file=file, line=1,
                                                                         hint="run `azft init` for a starting point")])
    if not isinstance(doc, CommentedMap):
        raise SpecError(f"{file}: not a mapping", problems=[Problem(
            f"a spec is a YAML mapping (key: value lines), got a {type(doc).__name__}", file=file, line=1)])

    located = _Located()
    located.lines[()] = 1
    problems: list[Problem] = []
    plain = _to_plain(doc, (), located, problems, file, env)
    spec = None
    try:
        spec = JobSpec.model_validate(plain)
    except ValidationError as e:
        for err in e.errors(include_url=False):
            problems.append(_error_to_problem(err, file, located))
    if problems:
        problems.sort(key=lambda p: (p.line or 0))
        n = len(problems)
        raise SpecError(f"{file}: {n} problem{'s' if n != 1 else ''} found", problems=problems)
    assert spec is not None
    spec._lines = located.lines  # type: ignore[attr-defined]
    return spec


def load_spec(path: str | os.PathLike, env: Optional[dict] = None) -> JobSpec:
    """Load a spec file. Raises SpecError (exit code 2) naming file, line and field for every problem."""
    p = Path(path)
    shown = str(path)
    if not p.exists():
        raise SpecError(f"{shown}: no such file", problems=[Problem("no such file", file=shown,
                                                                     hint="run `azft init` to write a starting spec")])
    if p.is_dir():
        raise SpecError(f"{shown}: is a directory", problems=[Problem("is a directory, not a spec file", file=shown)])
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SpecError(f"{shown}: not UTF-8", problems=[Problem(f"invalid UTF-8 byte at offset {e.start}",
                                                                  file=shown, line=line)]) from None
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
