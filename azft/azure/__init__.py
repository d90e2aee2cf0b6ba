"""Azure connection layer: workspace resolution, credentials, MLClient construction with azure-core retries,
error mapping, and content-addressed data uploads. Heavy SDKs are imported inside functions only."""

from azft.azure.workspace import (
    WorkspaceRef,
    azure_errors,
    build_credential,
    make_ml_client,
    map_azure_error,
    redact,
    resolve_workspace,
)

__all__ = [
    "WorkspaceRef",
    "azure_errors",
    "build_credential",
    "make_ml_client",
    "map_azure_error",
    "redact",
    "resolve_workspace",
]
