"""What points a client at an emulator: a real ``MLClient`` over HTTPS, the cloud metadata it needs, and the
environment variables that aim azft's own workspace code at it."""

from __future__ import annotations

from typing import Any, Protocol

from azft.emulator.blobs import BLOB_PREFIX
from azft.emulator.credential import FakeCredential


class _Settings(Protocol):
    """What the client side reads from the emulator."""

    @property
    def base_url(self) -> str: ...
    @property
    def ca_pem_path(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def own_blob_endpoint(self) -> str: ...

    instance: int
    subscription_id: str
    resource_group: str
    workspace_name: str
    storage_account: str
    storage_suffix: str
    blob_endpoint: str | None

    def cloud_name(self) -> str: ...
    def cloud_metadata(self) -> dict[str, str]: ...
    def make_credential(self) -> FakeCredential: ...


class EmulatorClients:
    """The client side of ``azft.emulator.server.Emulator`` (its address, CA, workspace and storage settings)."""

    def cloud_metadata(self: _Settings) -> dict[str, str]:
        return {
            "azure_portal": "https://portal.azure.com/",
            "resource_manager": self.base_url + "/",
            "active_directory": "https://login.microsoftonline.com/",
            "aml_resource_id": "https://ml.azure.com/",
            "storage_endpoint": self.storage_suffix,
            "registry_discovery_endpoint": self.base_url + "/",
        }

    def cloud_name(self: _Settings) -> str:
        return f"AzftEmulator{self.instance}x{self.port}"

    def make_credential(self: _Settings) -> FakeCredential:
        return FakeCredential()

    def make_ml_client(
        self: _Settings,
        retry_total: int = 0,
        *,
        credential: Any = None,
        retry_backoff_factor: float = 0.01,
        **kwargs: Any,
    ):
        """A real ``MLClient`` aimed at this emulator over HTTPS. ``MLClient`` writes ``AZUREML_CURRENT_CLOUD`` into
        the environment; it is restored right after construction so clients created later without ``cloud=`` keep
        targeting public Azure."""
        from azft.azure.workspace import new_ml_client

        kwargs.setdefault("connection_verify", self.ca_pem_path)
        kwargs.setdefault("enable_telemetry", False)
        # show_progress must stay on: with it off, azure-ai-ml 1.35 drops the error of a failed code-folder blob
        # upload and then waits forever for the file count to add up (azft silences the bars, not the errors)
        kwargs.setdefault("show_progress", True)
        kwargs.setdefault("polling_interval", 0)
        return new_ml_client(
            credential or self.make_credential(),
            self.subscription_id,
            self.resource_group,
            self.workspace_name,
            cloud=self.cloud_name(),
            cloud_metadata=self.cloud_metadata(),
            retry_total=retry_total,
            retry_backoff_factor=retry_backoff_factor,
            **kwargs,
        )

    def env(self: _Settings) -> dict[str, str]:
        """Environment variables that point azft (``azft.azure.workspace``) at this emulator."""
        return {
            "AZFT_AZURE_ENDPOINT": self.base_url,
            "AZFT_AZURE_CA_BUNDLE": self.ca_pem_path,
            "AZURE_SUBSCRIPTION_ID": self.subscription_id,
            "AZURE_RESOURCE_GROUP": self.resource_group,
            "AZUREML_WORKSPACE_NAME": self.workspace_name,
            # data uploads go to the configured blob endpoint (Azurite), else to the emulator's own Blob service
            "AZFT_BLOB_ENDPOINT": self.blob_endpoint or self.own_blob_endpoint,
        }

    @property
    def own_blob_endpoint(self: _Settings) -> str:
        """The account URL of the emulator's own Blob service (path-style, bearer tokens or SAS)."""
        return f"{self.base_url}{BLOB_PREFIX}/{self.storage_account}"
