"""Which Azure RBAC actions each azft action performs, and which built-in roles allow them.

Pure data and string matching (no Azure import): `docs/roles.md` is generated from it (`python -m azft.azure.roles`),
`infra/main.bicep` assigns the roles it names, `tests/assets/test_assets_roles.py` checks both against the requests
azft really sends to the emulator, and the emulator enforces an identity's roles (`mock.roles` in a spec) by
answering 403 `AuthorizationFailed` for anything outside them.

Facts and their sources:
- Role definitions: Azure built-in roles, MicrosoftDocs/azure-docs
  `articles/role-based-access-control/built-in-roles/ai-machine-learning.md` (AzureML Data Scientist, AzureML Compute
  Operator), `.../built-in-roles/storage.md` (Storage Blob Data
  Contributor), `.../built-in-roles/containers.md` (AcrPull).
- Action names: the resource provider's operations follow `<provider>/<resource type path>/{read|write|delete}` and
  `<provider>/<resource type path>/<verb>/action` (learn.microsoft.com, "Azure resource provider operations");
  `action_for_request` derives them from the REST path the same way.
- Inferred, not verified against Azure: polling the status URL of a long-running operation (`locations/
  mfeOperationsStatus`, `mfeOperationResults`) needs no role beyond the one that started it (AzureML Data Scientist
  is Azure's documented role for submitting and cancelling jobs, and cancel is such an operation); reading the
  `azureml` system registry needs no role in the user's subscription (it is shared by every Azure ML user).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Optional

ML = "Microsoft.MachineLearningServices"
BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"


@dataclass(frozen=True)
class Role:
    name: str
    id: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    source: str = ""


BUILT_IN_ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role(
            "AzureML Data Scientist",
            "f6c7c914-8db3-469d-8ca1-694a8f32e121",
            (
                f"{ML}/workspaces/*/read",
                f"{ML}/workspaces/*/action",
                f"{ML}/workspaces/*/delete",
                f"{ML}/workspaces/*/write",
            ),
            (
                f"{ML}/workspaces/delete",
                f"{ML}/workspaces/write",
                f"{ML}/workspaces/computes/*/write",
                f"{ML}/workspaces/computes/*/delete",
                f"{ML}/workspaces/computes/listKeys/action",
                f"{ML}/workspaces/listKeys/action",
                f"{ML}/workspaces/hubs/write",
                f"{ML}/workspaces/hubs/delete",
                f"{ML}/workspaces/featurestores/write",
                f"{ML}/workspaces/featurestores/delete",
            ),
            source="built-in-roles/ai-machine-learning.md",
        ),
        Role(
            "AzureML Compute Operator",
            "e503ece1-11d0-4e8e-8e2c-7a6c3bf38815",
            (f"{ML}/workspaces/computes/*", f"{ML}/workspaces/notebooks/vm/*"),
            source="built-in-roles/ai-machine-learning.md",
        ),
        Role(
            "Storage Blob Data Contributor",
            "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
            (
                "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
            ),
            data_actions=(
                f"{BLOBS}/delete",
                f"{BLOBS}/read",
                f"{BLOBS}/write",
                f"{BLOBS}/move/action",
                f"{BLOBS}/add/action",
            ),
            source="built-in-roles/storage.md",
        ),
        Role(
            "AcrPull",
            "7f951dda-4ed3-4680-a7ca-43fe172d538d",
            ("Microsoft.ContainerRegistry/registries/pull/read",),
            source="built-in-roles/containers.md",
        ),
    )
}
ROLE_BY_ID = {r.id: r for r in BUILT_IN_ROLES.values()}


@dataclass(frozen=True)
class AzftAction:
    """One thing azft does in Azure, the RBAC actions it performs and the least built-in roles that allow them."""

    name: str
    commands: str
    actions: tuple[str, ...]
    roles: tuple[str, ...]
    note: str = ""


def _ws(*tails: str) -> tuple[str, ...]:
    return tuple(f"{ML}/workspaces/{t}" if t else f"{ML}/workspaces/read" for t in tails)


#: azft's actions. The CI identity needs the roles of the ones its pipeline runs; the compute identity those of the
#: jobs (read data, write outputs, pull images, register the model).
AZFT_ACTIONS: tuple[AzftAction, ...] = (
    AzftAction(
        "plan",
        "azft plan, validate, data check",
        (),
        (),
        "Reads only local files and the catalog: no Azure call, no role.",
    ),
    AzftAction(
        "resolve the workspace",
        "submit, status, wait, logs, cancel, list (all backends on Azure)",
        _ws("", "datastores/read"),
        ("AzureML Data Scientist",),
    ),
    AzftAction(
        "upload training data",
        "submit (local data files)",
        (
            *_ws("datastores/read"),
            f"{BLOBS}/read",
            f"{BLOBS}/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
        ),
        ("AzureML Data Scientist", "Storage Blob Data Contributor"),
        "Content-addressed blobs in the workspace's default datastore, written with Entra ID (no account key).",
    ),
    AzftAction(
        "submit a serverless (maas) fine-tune",
        "submit -b maas",
        _ws("jobs/read", "jobs/write", "marketplaceSubscriptions/read", "marketplaceSubscriptions/write"),
        ("AzureML Data Scientist",),
        "Marketplace subscriptions only for non-Microsoft models; Phi models need none.",
    ),
    AzftAction(
        "submit a cluster (maap) pipeline",
        "submit -b maap",
        _ws(
            "jobs/read",
            "jobs/write",
            "components/read",
            "components/write",
            "components/versions/read",
            "components/versions/write",
            "codes/read",
            "codes/write",
            "codes/versions/read",
            "codes/versions/write",
            "codes/versions/startPendingUpload/action",
            "environments/read",
            "environments/versions/read",
            "environments/versions/write",
            "computes/read",
        ),
        ("AzureML Data Scientist",),
        "Component code is uploaded through the SAS that startPendingUpload returns (no storage role).",
    ),
    AzftAction(
        "create a cluster",
        "submit -b maap with compute.create_cluster: true",
        _ws("computes/read", "computes/write"),
        ("AzureML Compute Operator",),
        "AzureML Data Scientist excludes computes/*/write: CI gets Compute Operator only with the Bicep "
        "parameter ciMayCreateClusters.",
    ),
    AzftAction(
        "follow a job",
        "status, wait, logs, list, results",
        _ws("jobs/read", "experiments/runs/read"),
        ("AzureML Data Scientist",),
        "Logs and metrics come from the run history service (workspaces/experiments/runs).",
    ),
    AzftAction(
        "cancel a job",
        "cancel, wait --cancel-on-interrupt",
        _ws("jobs/cancel/action", "jobs/read"),
        ("AzureML Data Scientist",),
    ),
    AzftAction(
        "deploy and delete an endpoint",
        "deploy, endpoints list|delete|gc, predict --endpoint",
        _ws(
            "",
            "jobs/read",
            "models/read",
            "models/versions/read",
            "serverlessEndpoints/read",
            "serverlessEndpoints/write",
            "serverlessEndpoints/delete",
            "serverlessEndpoints/listKeys/action",
            "onlineEndpoints/read",
            "onlineEndpoints/write",
            "onlineEndpoints/delete",
            "onlineEndpoints/listKeys/action",
            "onlineEndpoints/deployments/read",
            "onlineEndpoints/deployments/write",
            "onlineEndpoints/deployments/delete",
        ),
        ("AzureML Data Scientist",),
        "The job's registered model is read to deploy it; keys are read (listKeys) only to call the endpoint "
        "or with --show-key. Scoring calls use the endpoint's key, not a role.",
    ),
    AzftAction(
        "register the model",
        "the register_model component (compute identity)",
        _ws("", "models/read", "models/write", "models/versions/read", "models/versions/write"),
        ("AzureML Data Scientist",),
    ),
    AzftAction(
        "read MLflow tracking",
        "runs list/show/compare against the workspace's azureml:// URI",
        _ws("experiments/read", "experiments/runs/read"),
        ("AzureML Data Scientist",),
    ),
    AzftAction(
        "run a job on the cluster",
        "the cluster's jobs (compute identity)",
        (f"{BLOBS}/read", f"{BLOBS}/write", "Microsoft.ContainerRegistry/registries/pull/read"),
        ("Storage Blob Data Contributor", "AcrPull"),
    ),
)

# --- matching --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _pattern(glob: str) -> "re.Pattern[str]":
    # `/*/` also matches a single `/`: Azure's own AzureML Data Scientist lists `workspaces/write` in NotActions next
    # to `workspaces/*/write` in Actions, which only makes sense if the wildcard covers zero path segments.
    parts = [".*".join(re.escape(p) for p in chunk.split("*")) for chunk in glob.split("/*/")]
    return re.compile("^" + "/(?:.*/)?".join(parts) + "$", re.IGNORECASE)


def _matches(action: str, globs: Iterable[str]) -> bool:
    return any(_pattern(g).match(action) for g in globs)


def is_data_action(action: str) -> bool:
    return action.lower().startswith(BLOBS.lower() + "/")


def allowed(action: str, roles: Iterable[str]) -> bool:
    """True when any of the named built-in roles grants the action (Azure's rule: Actions minus NotActions, for data
    actions DataActions; `*` matches any run of characters, names compare case-insensitively)."""
    for name in roles:
        role = BUILT_IN_ROLES[name]
        if is_data_action(action):
            if _matches(action, role.data_actions):
                return True
        elif _matches(action, role.actions) and not _matches(action, role.not_actions):
            return True
    return False


def least_roles(actions: Iterable[str]) -> list[str]:
    """The fewest built-in roles (from the table above) that together allow every action, or a ValueError naming an
    action none allows."""
    todo = list(dict.fromkeys(actions))
    for a in todo:
        if not allowed(a, BUILT_IN_ROLES):
            raise ValueError(f"no built-in role in the table allows {a}")
    chosen: list[str] = []
    while todo:
        best = max(BUILT_IN_ROLES, key=lambda r: (sum(allowed(a, [r]) for a in todo), -len(BUILT_IN_ROLES[r].actions)))
        chosen.append(best)
        todo = [a for a in todo if not allowed(a, [best])]
    return chosen


# --- requests -> actions ---------------------------------------------------------------------------------------
_VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
_FREE = re.compile(
    r"/providers/Microsoft\.MachineLearningServices/locations/[^/]+/mfeOperation|"
    r"^/discovery$|^/_emulator/|/registries/azureml(/|$)|^/mferp/managementfrontend/",
    re.IGNORECASE,
)


def action_for_request(method: str, path: str, query: Optional[dict] = None) -> Optional[str]:
    """The RBAC action Azure checks for a REST request, or None for a request no role governs (operation polling,
    discovery, the shared `azureml` registry, a Blob request signed with a SAS, the emulator's own control API)."""
    method = method.upper()
    path = path.split("?", 1)[0].rstrip("/")
    if _FREE.search(path) or (query and "sig" in {k.lower() for k in query}):
        return None
    if path.startswith("/_blob/") or path.startswith("/devstoreaccount"):
        return f"{BLOBS}/{'write' if method in ('PUT', 'POST') else _VERBS.get(method, 'read')}"
    history = re.match(r"^/history/v1\.0/.*/workspaces/[^/]+/(?:experiments/[^/]+/)?runs(/|$)", path, re.IGNORECASE)
    if history:
        return f"{ML}/workspaces/experiments/runs/{'read' if method == 'GET' else 'write'}"
    if re.match(r"^/metric/v2\.0/.*/workspaces/[^/]+/runs/[^/]+/(list|full)$", path, re.IGNORECASE):
        # the metric service's queries are POSTs that read a run's metrics
        return f"{ML}/workspaces/experiments/runs/read"
    m = re.search(r"/providers/(Microsoft\.[A-Za-z]+)/(.*)$", path)
    if not m:
        return None
    provider, segs = m.group(1), m.group(2).split("/")
    types = segs[0::2]
    verb = None
    if method == "POST" and len(segs) % 2 == 1 and len(segs) > 1:
        verb, types = types[-1], types[:-1]
    base = f"{provider}/{'/'.join(types)}"
    if verb:
        return f"{base}/{verb}/action"
    return f"{base}/{_VERBS.get(method, 'read')}"


def authorization_failed(action: str, scope: str, principal: str = "00000000-0000-0000-0000-000000000000") -> dict:
    """ARM's 403 body for an action outside the caller's roles (the shape Azure returns)."""
    return {
        "error": {
            "code": "AuthorizationFailed",
            "message": (
                f"The client '{principal}' with object id '{principal}' does not have authorization to perform "
                f"action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
                "please refresh your credentials."
            ),
        }
    }


# --- docs --------------------------------------------------------------------------------------------------------


def render_markdown() -> str:
    """docs/roles.md: the role table, generated from this module."""
    out = [
        "# Azure roles azft needs",
        "",
        "Generated from `azft/azure/roles.py` (`python -m azft.azure.roles > docs/roles.md`); a test keeps it "
        "current and checks `infra/main.bicep` assigns these roles.",
        "",
        "| azft action | commands | Azure actions | least built-in roles | note |",
        "|---|---|---|---|---|",
    ]
    for a in AZFT_ACTIONS:
        acts = "<br>".join(f"`{x}`" for x in a.actions) or "—"
        out.append(f"| {a.name} | {a.commands} | {acts} | {', '.join(a.roles) or '—'} | {a.note or '—'} |")
    out += [
        "",
        "## Who gets what (infra/main.bicep)",
        "",
        "| identity | scope | roles |",
        "|---|---|---|",
        "| CI identity (GitHub OIDC) | hub and project | AzureML Data Scientist; AzureML Compute Operator "
        "only with `ciMayCreateClusters=true` |",
        "| CI identity | storage account | Storage Blob Data Contributor |",
        "| compute identity (the clusters) | storage account | Storage Blob Data Contributor |",
        "| compute identity | container registry | AcrPull |",
        "| compute identity | project | AzureML Data Scientist (registers the model) |",
        "| hub's system identity | storage account | Storage Blob Data Contributor (serverless fine-tuning reads "
        "data through the hub's identity with `systemDatastoresAuthMode: identity`) |",
        "| project's system identity | — | none: Azure lists no storage role for it (Microsoft Foundry docs, "
        '"Scenarios for hub storage account role assignments") |',
        "",
        "## Built-in roles used",
        "",
        "| role | id | actions | not actions | data actions |",
        "|---|---|---|---|---|",
    ]
    for r in BUILT_IN_ROLES.values():

        def cell(xs: tuple[str, ...]) -> str:
            return "<br>".join(f"`{x}`" for x in xs) or "—"

        out.append(f"| {r.name} | `{r.id}` | {cell(r.actions)} | {cell(r.not_actions)} | {cell(r.data_actions)} |")
    out += [
        "",
        "Sources: Azure built-in roles (MicrosoftDocs/azure-docs, `articles/role-based-access-control/"
        "built-in-roles/`); what each azft action sends is what the emulator records during the test suite.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover - documentation generator
    print(render_markdown(), end="")
