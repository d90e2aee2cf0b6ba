"""A failed job's hint fits the backend it ran on and the code Azure gave; a failed job lists no outputs it does not
have. Both through the real maas/maap code against the emulator (the mock backend)."""

from __future__ import annotations

import pytest

from azft.backends.base import JobStatus

FAST = {"seconds_per_state": 0.05}
QUOTA = [{"kind": "job_error", "state": "Running", "error": "quota_exceeded"}]
CLUSTER = {"cluster": "gpu-a100", "instance_type": "Standard_NC24ads_A100_v4", "create_cluster": True}


def _failed(tmp_path, make_spec, plan_for, target: str, **sections):
    from azft.backends.mock import MockBackend

    spec = make_spec(name=f"quota-{target}", mock={**FAST, "target": target, "faults": QUOTA}, **sections)
    backend = MockBackend(state_dir=str(tmp_path / "mock"))
    try:
        return backend.submit(plan_for(spec, "mock")).wait(poll_interval=0.05)
    finally:
        backend.close()


def test_a_serverless_quota_failure_talks_about_serverless_not_vm_sizes(tmp_path, make_spec, plan_for):
    info = _failed(tmp_path, make_spec, plan_for, "maas")
    assert info.status == JobStatus.FAILED and info.error_code == "QuotaExceeded"
    hint = info.error.split(" — ", 1)[1]
    assert "instance_count" not in hint and "VM" not in hint and "size" not in hint
    assert "--retry" in hint and "--backend maap" in hint  # what works instead
    assert info.outputs == {}  # no registered_model: the job registered nothing


def test_a_cluster_quota_failure_talks_about_vm_quota(tmp_path, make_spec, plan_for):
    info = _failed(tmp_path, make_spec, plan_for, "maap", model="phi-3-mini-4k-instruct", compute=CLUSTER)
    assert info.status == JobStatus.FAILED and info.error_code == "QuotaExceeded"
    assert "VM family" in info.error and "compute.instance_count" in info.error
    assert info.outputs == {}


@pytest.mark.parametrize("code", ["QuotaExceeded", "OutOfMemory"])
def test_the_hint_table_is_per_backend_where_the_code_means_something_else(code):
    from azft.azure.errors import HINTS, hint_for

    assert hint_for(code, target="maap") == HINTS[code] == hint_for(code)
    serverless = hint_for(code, target="maas")
    assert serverless != HINTS[code]
    assert not any(w in serverless for w in ("instance_count", "instance_type:", "VM family", "ZeRO stage or"))
    # a code with one meaning everywhere keeps its one hint
    assert hint_for("UserError", target="maas") == HINTS["UserError"]
