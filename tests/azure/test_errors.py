"""The one Azure error mapping: the most specific code Azure gives, its message, a hint and the request id."""

from __future__ import annotations

import json

import pytest

from azft.azure.errors import HINTS, codes_from_body, map_error, read_reply
from azft.errors import EXIT_AZURE, AzureError

# The body Azure answered a serverless fine-tuning PUT with, in a region without it: HTTP 400, outer code UserError,
# the specific code in additionalInfo[type=InnerError]. Source: Azure/azure-sdk-assets,
# python/sdk/ml/azure-ai-ml/tests/recordings/finetuning_job/e2e_tests/
# test_custom_model_finetuning_job.pyTestCustomModelFineTuningJobtest_custom_model_finetuning_job.json (2026-03).
# The request id is ours: that recording is sanitized and keeps only x-ms-correlation-request-id.
REFUSAL = {
    "error": {
        "code": "UserError",
        "message": "Meta-Llama-3-8B : Serverless FineTuning not supported in westus.",
        "details": [],
        "additionalInfo": [
            {"type": "ComponentName", "info": {"value": "managementfrontend"}},
            {
                "type": "Correlation",
                "info": {"value": {"operation": "ef59202984873663d417f4cf5e442355", "request": "534a6ed098b5a591"}},
            },
            {"type": "Location", "info": {"value": "westus"}},
            {"type": "InnerError", "info": {"value": {"code": "ModelNotSupportedByMaaS", "innerError": None}}},
        ],
    }
}
REQUEST_ID = "6f1e0c54-2f5e-4a2b-9a51-0d2b8c1e7a10"


def _http_error(status: int, body: dict, headers: dict):
    """An HttpResponseError exactly as azure-mgmt-core raises it for a wire answer. No server can be told to answer
    this body today, so the answer is built as a `requests` response and read by azure-core's own transport."""
    import requests
    from azure.core.exceptions import HttpResponseError
    from azure.core.pipeline.transport import HttpRequest, RequestsTransportResponse
    from azure.mgmt.core.exceptions import ARMErrorFormat

    raw = requests.Response()
    raw.status_code = status
    raw._content = json.dumps(body).encode()
    raw.headers.update({"Content-Type": "application/json; charset=utf-8", **headers})
    request = HttpRequest("PUT", "https://management.azure.com/subscriptions/s/jobs/j?api-version=2024-10-01-preview")
    response = RequestsTransportResponse(request, raw)
    return HttpResponseError(response=response, error_format=ARMErrorFormat)


def test_the_specific_code_in_additional_info_wins_and_is_explained():
    exc = _http_error(400, REFUSAL, {"x-ms-request-id": REQUEST_ID, "x-ms-correlation-request-id": "corr"})
    reply = read_reply(exc)
    assert reply.codes == ("ModelNotSupportedByMaaS", "UserError") and reply.status == 400
    err = map_error(exc, "submitting job support-bot-1")
    assert isinstance(err, AzureError) and err.exit_code == EXIT_AZURE
    msg = err.message
    assert "UserError → ModelNotSupportedByMaaS" in msg and msg.count("UserError") == 1
    assert "Serverless FineTuning not supported in westus" in msg
    assert f"request id {REQUEST_ID}" in msg and err.request_id == REQUEST_ID
    assert err.hint == HINTS["ModelNotSupportedByMaaS"] and "--backend maap" in err.hint
    assert err.code == "ModelNotSupportedByMaaS"


def test_correlation_id_when_no_request_id():
    err = map_error(_http_error(400, REFUSAL, {"x-ms-correlation-request-id": "corr-1"}), "submitting")
    assert "correlation id corr-1" in err.message


@pytest.mark.parametrize(
    "body,expected",
    [
        ({"error": {"code": "UserError", "message": "m"}}, ["UserError"]),
        (
            {"error": {"code": "BadRequest", "message": "m", "details": [{"code": "QuotaExceeded", "message": "q"}]}},
            ["QuotaExceeded", "BadRequest"],
        ),
        (
            {
                "error": {
                    "code": "UserError",
                    "message": "m",
                    "innererror": {"code": "Outer", "innererror": {"code": "Deepest"}},
                }
            },
            ["Deepest", "Outer", "UserError"],
        ),
        (
            {"error": {"code": "UserError", "additionalInfo": [{"type": "InnerError", "info": {"code": "Flat"}}]}},
            ["Flat", "UserError"],
        ),
        (
            {"error": {"code": "UserError", "additionalInfo": ["junk", {"type": "InnerError", "info": "junk"}]}},
            ["UserError"],
        ),
        ({"unexpected": True}, []),
        ("not a dict", []),
    ],
)
def test_codes_most_specific_first(body, expected):
    assert codes_from_body(body) == expected


def test_a_job_in_a_state_azft_does_not_know_is_shown_as_it_is_and_not_finished():
    from azft.backends.base import Job, JobInfo, JobStatus

    class Scripted(Job):
        backend, name = "test", "j"

        def __init__(self, states):
            self.states = list(states)

        def info(self):
            return JobInfo(self.name, self.backend, JobStatus.parse(self.states.pop(0)))

        def cancel(self):
            raise NotImplementedError

        def logs(self, follow=False):
            return iter(())

    seen = []
    final = Scripted(["Created", "SomethingNew", "Running", "Completed"]).wait(
        poll_interval=0, on_update=lambda i: seen.append(i.status.value)
    )
    assert seen == ["Created", "SomethingNew", "Running", "Completed"] and final.status == JobStatus.COMPLETED
    assert not JobStatus.parse("Created").terminal and JobStatus.parse("created") is JobStatus.CREATED
