"""The emulator's token credential: ``azft.azure.loopback.LoopbackCredential`` (azft uses it for any loopback
Resource Manager endpoint), under the name the emulator's users know."""

from azft.azure.loopback import DEFAULT_TENANT_ID, LoopbackCredential

FakeCredential = LoopbackCredential

__all__ = ["DEFAULT_TENANT_ID", "FakeCredential"]
