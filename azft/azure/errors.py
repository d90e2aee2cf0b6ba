"""What Azure said, in words a person can act on: the one place azure-core / azure-ai-ml exceptions become
``azft.errors.AzureError`` (exit 4).

Azure answers a refused request with an ARM error body::

    {"error": {"code": "UserError", "message": "...", "details": [...],
               "additionalInfo": [{"type": "InnerError", "info": {"value": {"code": "ModelNotSupportedByMaaS"}}}]}}

The outer ``code`` is generic; the specific one sits in ``details``, ``innererror`` or the ``InnerError`` entry of
``additionalInfo`` (recorded by the azure-ai-ml team for a serverless fine-tuning job in a region without it:
Azure/azure-sdk-assets, ``python/sdk/ml/azure-ai-ml/tests/recordings/finetuning_job/e2e_tests/
test_custom_model_finetuning_job...json``, 2026-03). The message shows the most specific code, Azure's own message,
the hint for that code (the same table a job that failed while running is explained with) and the request id a
support ticket asks for (``x-ms-request-id``; else the correlation id).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from azft.errors import AzftError, AzureError

#: What a person can do about an Azure error code, whether Azure refused the submit or the job failed running.
HINTS: dict[str, str] = {
    "ModelNotSupportedByMaaS": "serverless fine-tuning of this model is not offered in this workspace's region "
    "(or at all any more): `azft catalog MODEL` lists where it runs; use a workspace "
    "there, or --backend maap on your own cluster",
    "ModelNotAvailableInRegion": "use a workspace in a region where fine-tuning of this model is offered "
    "(`azft catalog MODEL` lists them), or --backend maap",
    "QuotaExceeded": "request more quota for this VM family in the Azure portal (Quotas), pick another size or "
    "region, or lower compute.instance_count",
    "Unauthorized": "give the job's identity (the workspace's managed identity) Storage Blob Data Reader on the "
    "data's storage account, or check the marketplace subscription of the model",
    "OutOfMemory": "lower hyperparameters.batch_size or max_seq_length, turn on gradient_checkpointing, use a "
    "higher ZeRO stage or offload, or a larger instance_type",
    "MarketplaceSubscriptionNotFound": "third-party models need the workspace's Azure Marketplace subscription: "
    "rerun the submit (azft creates it) or create it in the portal",
    "InvalidSubscriptionId": "check azure.subscription_id (spec), AZURE_SUBSCRIPTION_ID or config.json",
    "SubscriptionNotFound": "check azure.subscription_id (spec), AZURE_SUBSCRIPTION_ID or config.json, and that "
    "you are signed in to that subscription's tenant",
    "ResourceGroupNotFound": "check azure.resource_group (spec), AZURE_RESOURCE_GROUP or config.json",
    "UserError": "check the job's inputs: run `azft data check` on the data files and `azft plan` on the spec",
}

#: Where the same code means something else per backend: serverless (maas) jobs run on Azure's capacity with the
#: hyperparameters it exposes, so VM sizes, instance counts, ZeRO and gradient checkpointing are not the user's to
#: change there; the general table above speaks of the user's own cluster (maap).
HINTS_BY_TARGET: dict[str, dict[str, str]] = {
    "maas": {
        "QuotaExceeded": "serverless fine-tuning found no capacity for this model in this region for your "
        "subscription: wait for its other fine-tuning jobs to end and run `azft submit SPEC "
        "--retry`, use a workspace in another region that offers the model (`azft catalog "
        "--model MODEL` lists them), or train on your own cluster with --backend maap",
        "OutOfMemory": "serverless fine-tuning picks its own hardware: lower hyperparameters.batch_size, shorten "
        "the longest rows (`azft data stats`), or use --backend maap where method, ZeRO stage and "
        "instance_type are yours to choose",
    },
}

LOGIN_HINT = (
    "sign in one of the ways DefaultAzureCredential tries: `az login` (Azure CLI); in GitHub Actions, "
    "azure/login with OIDC (federated credential: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID); "
    "a service principal via AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET; or a managed identity on "
    "an Azure VM"
)
ROLE_HINT = (
    "the signed-in identity needs a role on the workspace such as 'AzureML Data Scientist' or "
    "'Contributor' (and 'Storage Blob Data Contributor' on its storage account for uploads)"
)


def role_hint(message: str) -> str:
    """The least built-in role for the action a 403 names (docs/roles.md), else the general advice."""
    from azft.azure.roles import least_roles

    m = re.search(r"perform action '([^']+)'", message or "")
    try:
        needed = least_roles([m.group(1)]) if m else []
    except ValueError:
        needed = []
    if not needed:
        return ROLE_HINT
    extra = (
        (
            " (infra/main.bicep grants it to the CI identity with ciMayCreateClusters=true; or name a cluster that "
            "exists and keep compute.create_cluster: false)"
        )
        if "computes/" in m.group(1).lower()
        else ""
    )
    return (
        f"{m.group(1)} needs the built-in role '{needed[0]}' on the workspace{extra}; docs/roles.md lists what "
        "each azft action needs"
    )


WORKSPACE_HINT = (
    "check the subscription, resource group and workspace names (spec azure: section, AZURE_* "
    "variables or config.json) and that you are signed in to the right tenant"
)
CA_BUNDLE_ENV = "AZFT_AZURE_CA_BUNDLE"


@dataclass(frozen=True)
class AzureReply:
    """An Azure error answer, read once: status, codes (most specific first), message, request id."""

    status: Optional[int] = None
    codes: tuple[str, ...] = ()
    message: str = ""
    request_id: Optional[str] = None
    request_id_header: str = "x-ms-request-id"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def code(self) -> Optional[str]:
        """The most specific code Azure gave."""
        return self.codes[0] if self.codes else None

    @property
    def outer_code(self) -> Optional[str]:
        return self.codes[-1] if self.codes else None

    def hint(self) -> Optional[str]:
        return hint_for(*self.codes)

    def code_text(self) -> str:
        """``UserError → ModelNotSupportedByMaaS``: the outer code once, then the specific one."""
        if not self.codes:
            return ""
        if len(self.codes) == 1:
            return self.codes[0]
        return f"{self.outer_code} → {self.code}"

    def reference(self) -> str:
        if not self.request_id:
            return ""
        label = "request id" if self.request_id_header == "x-ms-request-id" else "correlation id"
        return f" ({label} {self.request_id})"


def hint_for(*codes: Optional[str], target: Optional[str] = None) -> Optional[str]:
    """The hint of the first (most specific) code that has one: the backend's own (``target`` maas/maap) when that
    code means something else there, else the general one."""
    own = HINTS_BY_TARGET.get(target or "", {})
    for c in codes:
        if c and c in own:
            return own[c]
        if c and c in HINTS:
            return HINTS[c]
    return None


def job_error_text(code: Optional[str], message: Optional[str], job: str, target: Optional[str] = None) -> str:
    """A failed job's error as shown by status/wait: Azure's message, then what to do about it on this backend."""
    text = message or f"the job failed; see `azft logs {job}`"
    hint = hint_for(code, target=target)
    return text + (f" — {hint}" if hint else "")


# ---------------------------------------------------------------------------------------------------------------
# reading Azure's answer
def _inner_codes(node: Any, depth: int = 0) -> list[str]:
    """Codes in an ``innererror`` / ``innerError`` chain, deepest first."""
    if not isinstance(node, Mapping) or depth > 8:
        return []
    deeper = _inner_codes(node.get("innererror") or node.get("innerError") or node.get("value"), depth + 1)
    code = node.get("code")
    return deeper + ([code] if isinstance(code, str) and code else [])


def codes_from_body(body: Any) -> list[str]:
    """Every code in an ARM error body, most specific first (the outer code last)."""
    err = body.get("error", body) if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping):
        return []
    specific: list[str] = []
    for info in err.get("additionalInfo") or []:
        if isinstance(info, Mapping) and str(info.get("type", "")).lower() == "innererror":
            specific += _inner_codes(info.get("info"))
    specific += _inner_codes(err.get("innererror") or err.get("innerError"))
    for detail in err.get("details") or []:
        specific += codes_from_body({"error": detail}) if isinstance(detail, Mapping) else []
    outer = err.get("code")
    out: list[str] = []
    for c in [*specific, outer]:
        if isinstance(c, str) and c and c not in out:
            out.append(c)
    if outer in out:  # the outer code always last
        out.remove(outer)
        out.append(outer)
    return out


def _body_of(exc: BaseException) -> Any:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:
        return json.loads(response.text())
    except Exception:
        return None


def _codes_from_exception(exc: BaseException) -> list[str]:
    err = getattr(exc, "error", None)
    codes: list[str] = []
    for info in getattr(err, "additional_info", None) or []:
        kind = info.get("type") if isinstance(info, Mapping) else getattr(info, "type", None)
        value = info.get("info") if isinstance(info, Mapping) else getattr(info, "info", None)
        if str(kind or "").lower() == "innererror":
            codes += _inner_codes(value)
    codes += _inner_codes(getattr(err, "innererror", None))
    for d in getattr(err, "details", None) or []:
        if getattr(d, "code", None):
            codes.append(d.code)
    if getattr(err, "code", None):
        codes.append(err.code)
    return codes


def read_reply(exc: BaseException) -> AzureReply:
    """Status, codes, message and request id of an azure-core / azure-ai-ml exception (secrets redacted)."""
    from azft.redact import redact_text

    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "status_code", None)
    body = _body_of(exc)
    codes = codes_from_body(body) or _codes_from_exception(exc)
    seen: list[str] = []
    for c in codes:
        if c not in seen:
            seen.append(c)
    err = body.get("error") if isinstance(body, Mapping) else None
    message = (
        (err.get("message") if isinstance(err, Mapping) else None)
        or getattr(getattr(exc, "error", None), "message", None)
        or getattr(exc, "message", None)
        or str(exc)
    )
    headers = getattr(response, "headers", None) or {}
    request_id, header = None, "x-ms-request-id"
    for name in ("x-ms-request-id", "x-ms-correlation-request-id"):
        value = headers.get(name) if hasattr(headers, "get") else None
        if value:
            request_id, header = str(value), name
            break
    return AzureReply(
        status=status,
        codes=tuple(seen),
        message=redact_text(_first_line(str(message))),
        request_id=request_id,
        request_id_header=header,
    )


def _first_line(text: str, limit: int = 400) -> str:
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------------------
# the mapping
def map_error(exc: BaseException, doing: str, ws: Any = None) -> AzftError:
    """One azure-core / azure-ai-ml / transport exception → ``AzureError`` (exit 4); ``AzftError`` passes through."""
    if isinstance(exc, AzftError):
        return exc
    from azure.core import exceptions as ae

    r = read_reply(exc)
    where = f" ({ws.describe()})" if ws is not None and hasattr(ws, "describe") else ""
    codes = f" [{r.code_text()}]" if r.codes else ""
    said = f"{r.message}{codes}{r.reference()}"

    def err(text: str, hint: Optional[str]) -> AzureError:
        e = AzureError(text, hint=hint)
        e.code, e.request_id, e.status = r.code, r.request_id, r.status  # type: ignore[attr-defined]
        return e

    if isinstance(exc, ae.ClientAuthenticationError) or r.status == 401:
        if r.status is None:  # the credential itself failed: no request reached Azure
            return err(f"could not get an Azure token while {doing}: {r.message}", LOGIN_HINT)
        return err(f"not authenticated: Azure rejected the credentials while {doing}{where}: {said}", LOGIN_HINT)
    if r.status == 403:
        return err(f"permission denied (not authorized) while {doing}{where}: {said}", r.hint() or role_hint(r.message))
    if isinstance(exc, ae.ResourceNotFoundError) or r.status == 404:
        about_ws = "workspaces/" in r.message.lower() or r.code in ("ResourceGroupNotFound", "SubscriptionNotFound")
        return err(f"not found while {doing}{where}: {said}", r.hint() if not about_ws else WORKSPACE_HINT)
    if isinstance(exc, ae.ResourceExistsError) or r.status == 409:
        return err(
            f"conflict while {doing}{where}: {said}",
            "a different resource already uses this name; for a job, rerun with --force for a new one",
        )
    if r.status == 429:
        return err(
            f"Azure kept throttling requests while {doing}{where} (HTTP 429) after retries: {said}",
            "wait a minute and rerun the same command; it resumes where it stopped",
        )
    if r.status is not None and r.status >= 500:
        return err(
            f"Azure service error while {doing}{where} (HTTP {r.status}) after retries: {said}",
            "usually temporary: rerun the same command later (nothing is created twice)",
        )
    if isinstance(exc, (ae.ServiceRequestError, ae.ServiceResponseError)):
        hint = "check the network or proxy, then rerun: the same command finds what was already created"
        if "CERTIFICATE" in str(exc).upper():
            hint = f"TLS verification failed; for a test endpoint set {CA_BUNDLE_ENV} to its CA certificate"
        return err(f"could not reach Azure while {doing}: {r.message}", hint)
    if r.status is not None:
        return err(
            f"Azure refused {doing}{where} (HTTP {r.status}{', ' + r.code_text() if r.codes else ''}): "
            f"{r.message}{r.reference()}",
            r.hint(),
        )
    return err(f"Azure error while {doing}{where}: {r.message}", r.hint())


def is_azure_exception(exc: BaseException) -> bool:
    """Raised by the Azure SDKs or their transport (and not already an azft error)."""
    return type(exc).__module__.startswith(("azure.", "msal", "requests", "urllib3", "marshmallow"))


def is_not_found(exc: BaseException) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError) or getattr(exc, "status_code", None) == 404


@contextlib.contextmanager
def azure_errors(doing: str, ws: Any = None) -> Iterator[None]:
    """Re-raise what the Azure SDKs raise as ``AzureError`` (``AzftError`` and anything else pass through)."""
    try:
        yield
    except AzftError:
        raise
    except Exception as exc:
        if is_azure_exception(exc):
            raise map_error(exc, doing, ws) from None
        raise


def call(doing: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one SDK call (azure-core has already retried what is transient); its failure becomes ``AzureError``."""
    with azure_errors(doing):
        return fn(*args, **kwargs)
