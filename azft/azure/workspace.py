"""Which Azure ML workspace azft talks to and how it authenticates (Azure errors: ``azft.azure.errors``).

Workspace resolution, field by field, first hit wins:
  1. explicit values (the spec's ``azure:`` section: ``subscription_id``, ``resource_group``, ``workspace``, ``region``)
  2. environment: ``AZURE_SUBSCRIPTION_ID``, ``AZURE_RESOURCE_GROUP``, ``AZUREML_WORKSPACE_NAME`` or
     ``AZURE_ML_WORKSPACE``, ``AZURE_LOCATION`` (region)
  3. the Azure ML ``config.json`` convention: ``config.json`` or ``.azureml/config.json`` in the current directory
     or any parent (keys ``subscription_id``, ``resource_group``, ``workspace_name``, or ``Scope``)

Authentication is ``DefaultAzureCredential``: environment (service principal or federated token), workload identity
(GitHub Actions OIDC), managed identity, Azure CLI login. Retries use azure-core's ``RetryPolicy`` (429 with
Retry-After, 5xx, connection resets) configured through the client's keyword arguments.

``AZFT_AZURE_ENDPOINT`` (+ ``AZFT_AZURE_CA_BUNDLE``) point azft at an emulator such as ``python -m azft.emulator``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azft.errors import AzureError, Problem, UsageError

FIELDS = ("subscription_id", "resource_group", "workspace", "region")
REQUIRED = ("subscription_id", "resource_group", "workspace")

ENV_VARS: dict[str, tuple[str, ...]] = {
    "subscription_id": ("AZURE_SUBSCRIPTION_ID",),
    "resource_group": ("AZURE_RESOURCE_GROUP",),
    "workspace": ("AZUREML_WORKSPACE_NAME", "AZURE_ML_WORKSPACE"),
    "region": ("AZURE_LOCATION",),
}
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "subscription_id": ("subscription_id", "subscriptionId"),
    "resource_group": ("resource_group", "resourceGroup", "resource_group_name"),
    "workspace": ("workspace_name", "workspaceName", "workspace"),
    "region": ("location", "region"),
}
ENDPOINT_ENV = "AZFT_AZURE_ENDPOINT"
CA_BUNDLE_ENV = "AZFT_AZURE_CA_BUNDLE"
CREDENTIAL_ENV = "AZFT_AZURE_CREDENTIAL"

_SCOPE_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/(?P<ws>[^/]+)/?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class WorkspaceRef:
    """A resolved workspace and where each value came from."""

    subscription_id: str
    resource_group: str
    workspace: str
    region: str | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )

    def describe(self) -> str:
        return f"workspace {self.workspace!r} in resource group {self.resource_group!r} (subscription {self.subscription_id})"

    def values(self) -> dict[str, str]:
        """The resolved values, ready to be passed back as explicit values (a submission record, a backend)."""
        return {n: v for n in FIELDS if (v := getattr(self, n)) not in (None, "")}

    def to_dict(self) -> dict[str, Any]:
        """What the plan shows: each value and where it came from."""
        return {**self.values(), "sources": {n: self.sources[n] for n in FIELDS if n in self.sources}}


def _explicit_value(explicit: Any, name: str) -> Any:
    if explicit is None:
        return None
    if isinstance(explicit, Mapping):
        return explicit.get(name)
    return getattr(explicit, name, None)


def find_config_json(start: str | os.PathLike[str] | None = None) -> tuple[Path | None, list[Path]]:
    """The nearest Azure ML ``config.json`` from ``start`` upwards, and every path looked at."""
    looked: list[Path] = []
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        for cand in (d / "config.json", d / ".azureml" / "config.json"):
            looked.append(cand)
            if cand.is_file() and _looks_like_aml_config(cand):
                return cand, looked
    return None, looked


def _looks_like_aml_config(path: Path) -> bool:
    """A config.json is Azure ML's when it names a workspace or subscription (other tools use the name too)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError:
        return False
    return any(k in text for k in ("workspace_name", "subscription_id", "Scope", "workspaceName", "subscriptionId"))


def read_config_json(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{path}:{e.lineno}: not valid JSON ({e.msg})",
            problems=[Problem(f"not valid JSON ({e.msg})", file=str(path), line=e.lineno)],
            hint="an Azure ML config.json looks like "
            '{"subscription_id": "...", "resource_group": "...", "workspace_name": "..."}',
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object with subscription_id, resource_group, workspace_name")
    out: dict[str, str] = {}
    scope = data.get("Scope") or data.get("scope")
    if isinstance(scope, str):
        m = _SCOPE_RE.match(scope.strip())
        if not m:
            raise UsageError(
                f"{path}: Scope {scope!r} is not a workspace ARM id",
                problems=[Problem("not a workspace ARM id", file=str(path), field="Scope")],
                hint="expected /subscriptions/<id>/resourceGroups/<rg>/providers/"
                "Microsoft.MachineLearningServices/workspaces/<name>",
            )
        out.update(subscription_id=m["sub"], resource_group=m["rg"], workspace=m["ws"])
    for fname, keys in CONFIG_KEYS.items():
        for k in keys:
            v = data.get(k)
            if isinstance(v, str) and v.strip():
                out.setdefault(fname, v.strip())
                break
    return out


def resolve_workspace(
    explicit: Any = None,
    *,
    subscription_id: str | None = None,
    resource_group: str | None = None,
    workspace: str | None = None,
    region: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    explicit_source: str = "the spec's azure: section",
    defaults: Mapping[str, str] | None = None,
    defaults_source: str = "default",
) -> WorkspaceRef:
    """Resolve subscription, resource group, workspace name and region (see the module docstring for the order).

    Explicit values come from ``explicit`` (a mapping or an object with those attributes, e.g. the spec's azure
    section) and/or the keyword arguments (which win). ``defaults`` fill what none of the three places has (the mock
    backend's emulated workspace). Raises ``AzureError`` naming every place that was tried when a required value is
    missing.
    """
    kw = {
        "subscription_id": subscription_id,
        "resource_group": resource_group,
        "workspace": workspace,
        "region": region,
    }
    if any(v not in (None, "") for v in kw.values()):
        merged = {n: _explicit_value(explicit, n) for n in FIELDS}
        merged.update({k: v for k, v in kw.items() if v not in (None, "")})
        explicit = merged
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in FIELDS:
        v = _explicit_value(explicit, name)
        if v not in (None, ""):
            values[name], sources[name] = str(v).strip(), explicit_source
    for name, keys in ENV_VARS.items():
        if name in values:
            continue
        for k in keys:
            v = env.get(k)
            if v and v.strip():
                values[name], sources[name] = v.strip(), f"environment variable {k}"
                break
    config_path: Path | None = None
    looked: list[Path] = []
    if any(n not in values for n in FIELDS):
        config_path, looked = find_config_json(cwd)
        if config_path is not None:
            for name, v in read_config_json(config_path).items():
                if name not in values:
                    values[name], sources[name] = v, str(config_path)
    for name, v in (defaults or {}).items():
        if name in FIELDS and name not in values and v not in (None, ""):
            values[name], sources[name] = str(v), defaults_source
    missing = [n for n in REQUIRED if n not in values]
    if missing:
        found = ", ".join(f"{n} from {sources[n]}" for n in FIELDS if n in sources) or "nothing"
        tried = [
            f"{explicit_source} ({', '.join(FIELDS)})",
            "environment variables " + ", ".join(k for n in REQUIRED for k in ENV_VARS[n]),
            (
                f"config.json at {config_path}"
                if config_path
                else "config.json or .azureml/config.json in "
                + (str(looked[0].parent) if looked else str(cwd or os.getcwd()))
                + " and its parents (none found)"
            ),
        ]
        raise AzureError(
            f"Azure ML workspace not fully configured: missing {', '.join(missing)}. "
            f"Tried: {'; '.join(tried)}. Found: {found}.",
            hint="set them in the spec (azure: {subscription_id, resource_group, workspace}), export "
            "AZURE_SUBSCRIPTION_ID / AZURE_RESOURCE_GROUP / AZUREML_WORKSPACE_NAME, or download the workspace's "
            "config.json from Azure ML studio into this directory",
        )
    return WorkspaceRef(
        values["subscription_id"], values["resource_group"], values["workspace"], values.get("region"), sources
    )


# ---------------------------------------------------------------------------------------------------------------
# credentials and clients
def _is_loopback(url: str) -> bool:
    from urllib.parse import urlparse

    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def build_credential(endpoint: str | None = None, env: Mapping[str, str] | None = None) -> Any:
    """``DefaultAzureCredential``; for a loopback emulator endpoint, the emulator's token credential.

    ``AZFT_AZURE_CREDENTIAL=default`` forces ``DefaultAzureCredential`` even against an emulator;
    ``AZFT_AZURE_CREDENTIAL=emulator`` is accepted only with a loopback ``AZFT_AZURE_ENDPOINT``.
    """
    env = os.environ if env is None else env
    choice = (env.get(CREDENTIAL_ENV) or "").strip().lower()
    if choice not in ("", "default", "emulator"):
        raise UsageError(f"{CREDENTIAL_ENV}={choice!r} is not one of: default, emulator")
    use_emulator = choice == "emulator" or (choice == "" and endpoint is not None and _is_loopback(endpoint))
    if use_emulator:
        if endpoint is None or not _is_loopback(endpoint):
            raise UsageError(f"{CREDENTIAL_ENV}=emulator needs a loopback {ENDPOINT_ENV} (127.0.0.1 or localhost)")
        from azft.azure.loopback import LoopbackCredential

        return LoopbackCredential()
    from azure.identity import ChainedTokenCredential, DefaultAzureCredential

    # Interactive browser login would hang CI; every non-interactive way stays on.
    default = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    ci = ci_federated_credential(env)
    return ChainedTokenCredential(ci, default) if ci is not None else default


def ci_federated_credential(env: Mapping[str, str]) -> Any:
    """A federated credential that asks the CI system for a fresh OIDC token every time it needs one.

    `azure/login` (GitHub) and `AzureCLI@2` (Azure DevOps) exchange one OIDC token at the start of a job; a token
    requested from the Azure CLI an hour later fails (AADSTS700024) while a long `azft wait` is still running.
    Asking the runner for a new assertion on each token request keeps long waits alive. None outside CI.
    """
    from azure.identity import AzurePipelinesCredential, ClientAssertionCredential

    client_id, tenant_id = env.get("AZURE_CLIENT_ID"), env.get("AZURE_TENANT_ID")
    gh_url, gh_token = env.get("ACTIONS_ID_TOKEN_REQUEST_URL"), env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if gh_url and gh_token and client_id and tenant_id:

        def github_assertion() -> str:
            import json
            import urllib.request

            sep = "&" if "?" in gh_url else "?"
            req = urllib.request.Request(
                f"{gh_url}{sep}audience=api://AzureADTokenExchange", headers={"Authorization": f"bearer {gh_token}"}
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())["value"]

        return ClientAssertionCredential(tenant_id, client_id, github_assertion)
    connection = env.get("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")
    access_token = env.get("SYSTEM_ACCESSTOKEN")
    ado_client = env.get("AZURESUBSCRIPTION_CLIENT_ID") or client_id
    ado_tenant = env.get("AZURESUBSCRIPTION_TENANT_ID") or tenant_id
    if connection and access_token and ado_client and ado_tenant:
        return AzurePipelinesCredential(
            tenant_id=ado_tenant,
            client_id=ado_client,
            service_connection_id=connection,
            system_access_token=access_token,
        )
    return None


def retry_kwargs(
    retry_total: int = 6, retry_backoff_factor: float = 0.8, retry_backoff_max: int = 60, **extra: Any
) -> dict[str, Any]:
    """Keyword arguments that configure azure-core's ``RetryPolicy`` in every pipeline of an SDK client.

    The policy retries 408/429/500/502/503/504 and connection errors with exponential backoff and honours
    ``Retry-After``.
    """
    out = {
        "retry_total": retry_total,
        "retry_backoff_factor": retry_backoff_factor,
        "retry_backoff_max": retry_backoff_max,
    }
    out.update(extra)
    return out


def _cloud_for_endpoint(endpoint: str) -> tuple[str, dict[str, str]]:
    base = endpoint.rstrip("/") + "/"
    name = "AzftCustom" + hashlib.sha256(base.encode()).hexdigest()[:12]
    return name, {
        "azure_portal": "https://portal.azure.com/",
        "resource_manager": base,
        "active_directory": "https://login.microsoftonline.com/",
        "aml_resource_id": "https://ml.azure.com/",
        "storage_endpoint": "core.windows.net",
        "registry_discovery_endpoint": base,
    }


def make_ml_client(
    ws: WorkspaceRef,
    credential: Any = None,
    endpoint: str | None = None,
    ca: str | os.PathLike[str] | None = None,
    *,
    retry_total: int = 6,
    retry_backoff_factor: float = 0.8,
    retry_backoff_max: int = 60,
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
):
    """An ``MLClient`` for ``ws`` with azure-core retry settings; ``endpoint``/``ca`` (or ``AZFT_AZURE_ENDPOINT``/
    ``AZFT_AZURE_CA_BUNDLE``) aim it at another Resource Manager endpoint such as the emulator."""
    env = os.environ if env is None else env
    endpoint = endpoint or env.get(ENDPOINT_ENV) or None
    ca = ca or env.get(CA_BUNDLE_ENV) or None
    if endpoint is not None and not endpoint.lower().startswith("https://"):
        raise UsageError(f"{ENDPOINT_ENV}={endpoint!r} must be an https:// URL (bearer tokens are only sent over TLS)")
    if ca is not None and not Path(ca).is_file():
        raise UsageError(f"{CA_BUNDLE_ENV}: CA bundle {ca} does not exist")
    if credential is None:
        credential = build_credential(endpoint, env)

    kw: dict[str, Any] = retry_kwargs(retry_total, retry_backoff_factor, retry_backoff_max)
    if ca is not None:
        kw["connection_verify"] = str(ca)
    if endpoint is not None:
        cloud, metadata = _cloud_for_endpoint(endpoint)
        kw.update(cloud=cloud, cloud_metadata=metadata)
    kw.update(kwargs)
    if kw.get("show_progress") is False:
        # azure-ai-ml 1.35 loses a failed code-upload error without progress reporting and then waits forever for
        # the file count to add up; azft hides the SDK's bars on stderr instead (backends/azureml.py).
        raise UsageError("make_ml_client: show_progress must stay on")
    return new_ml_client(credential, ws.subscription_id, ws.resource_group, ws.workspace, **kw)


def new_ml_client(*args: Any, **kwargs: Any) -> Any:
    """``azure.ai.ml.MLClient(*args, **kwargs)``. MLClient records its cloud process-wide (``AZUREML_CURRENT_CLOUD``);
    the variable is restored right after, so clients created later without ``cloud=`` are unaffected."""
    from azure.ai.ml import MLClient

    previous = os.environ.get("AZUREML_CURRENT_CLOUD")
    try:
        return MLClient(*args, **kwargs)
    finally:
        if previous is None:
            os.environ.pop("AZUREML_CURRENT_CLOUD", None)
        else:
            os.environ["AZUREML_CURRENT_CLOUD"] = previous


# ---------------------------------------------------------------------------------------------------------------
# errors
_SECRET_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_.~+/]+=*"), r"\1[redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]*"), "[redacted-token]"),
    (re.compile(r"(?i)(sig=)[^&\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)(AccountKey=)[^;\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)(SharedAccessSignature=)[^;\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(?i)(client_secret=)[^&\s\"']+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)(\"?(?:primaryKey|secondaryKey|key|password|secret)\"?\s*[:=]\s*\"?)[^\"',\s}]+"),
        r"\1[redacted]",
    ),
]


def redact(text: str) -> str:
    """Remove tokens, SAS signatures, account keys and secrets from a message."""
    for rx, repl in _SECRET_PATTERNS:
        text = rx.sub(repl, text)
    return text
