"""Azure connection layer: workspace resolution, credentials, MLClient construction with azure-core retries,
the one Azure error mapping, and content-addressed data uploads. Heavy SDKs are imported inside functions only."""

from azft.azure.errors import azure_errors, map_error
from azft.azure.workspace import (
    WorkspaceRef,
    build_credential,
    make_ml_client,
    redact,
    resolve_workspace,
)

__all__ = [
    "WorkspaceRef",
    "azure_errors",
    "build_credential",
    "make_ml_client",
    "map_error",
    "redact",
    "resolve_workspace",
]
