"""A real ``MLClient`` aimed at an emulator over HTTPS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator


def make_ml_client(emu: Emulator, retry_total: int = 0, *, credential: Any = None,
                   retry_backoff_factor: float = 0.01, **kwargs: Any):
    """``MLClient`` writes ``AZUREML_CURRENT_CLOUD`` into the environment; it is restored right after construction
    so clients created later without ``cloud=`` keep targeting public Azure."""
    from azft.azure.workspace import new_ml_client

    kwargs.setdefault("connection_verify", emu.ca_pem_path)
    kwargs.setdefault("enable_telemetry", False)
    # show_progress must stay on: with it off, azure-ai-ml 1.35 drops the error of a failed code-folder blob
    # upload and then waits forever for the file count to add up (azft silences the bars, not the errors)
    kwargs.setdefault("show_progress", True)
    kwargs.setdefault("polling_interval", 0)
    return new_ml_client(credential or emu.make_credential(), emu.subscription_id, emu.resource_group,
                         emu.workspace_name, cloud=emu.cloud_name(), cloud_metadata=emu.cloud_metadata(),
                         retry_total=retry_total, retry_backoff_factor=retry_backoff_factor, **kwargs)
