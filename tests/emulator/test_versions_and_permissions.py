"""The SDK range azft declares is the one tested, and the emulator's identity-permission check."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

ROOT = Path(__file__).resolve().parents[2]


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def test_the_declared_azure_ai_ml_range_is_bounded_and_holds_the_tested_version():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("azure-ai-ml"))
    lower = re.search(r">=\s*([\d.]+)", spec)
    upper = re.search(r"<\s*([\d.]+)", spec)
    assert lower and upper, f"{spec}: a lower and an upper bound (a new minor release is tested first)"
    installed = _release(version("azure-ai-ml"))
    assert _release(lower.group(1)) <= installed < _release(upper.group(1)), (spec, installed)


def test_the_contract_is_the_generated_model_set_of_the_installed_sdk():
    """The emulator's contract names the api-version of the models it reads; a new SDK with new models shows here."""
    import inspect

    from azure.ai.ml._restclient.arm_ml_service import _configuration

    from azft.emulator.contract import CONTRACT_API_VERSION, Contract

    source = inspect.getsource(_configuration.MachineLearningServicesMgmtClientConfiguration.__init__)
    assert f'"api_version", "{CONTRACT_API_VERSION}"' in source
    assert Contract.load().model("FineTuningJob").__module__.startswith("azure.ai.ml._restclient.arm_ml_service")


def test_actions_outside_the_allowed_set_are_refused_like_arm_and_performed_ones_are_recorded(emulator, ml_client):
    emulator.permissions.allowed = {
        "GET Microsoft.MachineLearningServices/workspaces",
        "* Microsoft.MachineLearningServices/workspaces/datastores",
    }
    try:
        assert ml_client.workspaces.get(emulator.workspace_name).name == emulator.workspace_name
        with pytest.raises(HttpResponseError) as e:
            ml_client.compute.get("gpu")
        assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
        assert "Microsoft.MachineLearningServices/workspaces/computes/read" in e.value.error.message
    finally:
        emulator.permissions.allowed = None
    assert emulator.performed_actions == ["Microsoft.MachineLearningServices/workspaces/read"]
    with pytest.raises(HttpResponseError) as e:  # allowed again (default: all), so Azure's 404 answers
        ml_client.compute.get("gpu")
    assert e.value.status_code == 404
    assert emulator.performed_actions[-1] == "Microsoft.MachineLearningServices/workspaces/computes/read"
