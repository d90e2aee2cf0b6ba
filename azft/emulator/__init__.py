"""Loopback HTTPS emulator of the Azure ML REST API (plus an Azurite launcher) for tests and the mock backend.

    from azft.emulator import Emulator
    with Emulator() as emu:
        ml_client = emu.make_ml_client()
        ...

Nothing heavy is imported here; ``azure.ai.ml`` is imported only by ``Emulator.make_ml_client``.
"""

from __future__ import annotations

from azft.emulator.credential import FakeCredential
from azft.emulator.lifecycle import KNOWN_ERRORS, LIFECYCLE, ManualClock, Outcome
from azft.emulator.faults import Fault
from azft.emulator.server import API_VERSIONS, Emulator
from azft.emulator.wire import RecordedRequest
from azft.emulator.tls import TestCA, make_test_ca

__all__ = [
    "API_VERSIONS",
    "KNOWN_ERRORS",
    "LIFECYCLE",
    "Emulator",
    "FakeCredential",
    "Fault",
    "ManualClock",
    "Outcome",
    "RecordedRequest",
    "TestCA",
    "make_test_ca",
]
