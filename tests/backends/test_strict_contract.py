"""The emulator holds every request body to Azure's REST contract (azure-ai-ml's generated models).

What azft sends today is recorded from real submits through the SDK (maas: the FineTuning job; maap: the cluster,
the components and the pipeline job); each required property is removed in turn and the variant sent again: every
one is refused with ARM's 400 naming the property.
"""

from __future__ import annotations

import copy
import json
import ssl
import urllib.error
import urllib.request

import pytest

from azft.emulator.contract import Contract

from .test_maap_submit import _maap_spec


def _send(emulator, method: str, path: str, query: dict, body) -> tuple[int, dict]:
    ctx = ssl.create_default_context(cafile=emulator.ca_pem_path)
    url = emulator.base_url + path + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": "Bearer token"},
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _without(body: dict, path: tuple) -> dict:
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def _target(path: tuple) -> str:
    return ".".join(str(p) for p in path)


_MODELS = {"jobs.put": "JobBase", "computes.put": "ComputeResource", "assets.put": None}


def _model_for(rec) -> str:
    if rec.route == "assets.put":
        from azft.emulator.routes.assets import VERSION_MODELS

        return VERSION_MODELS[rec.path.split("/")[-4]]
    return _MODELS[rec.route]


def _assert_each_removal_refused(emulator, recorded) -> int:
    contract = Contract.load()
    refused = 0
    for rec in recorded:
        model = _model_for(rec)
        assert contract.violations(model, rec.body) == [], (rec.path, contract.violations(model, rec.body))
        paths = contract.required_paths(model, rec.body)
        assert paths, f"{rec.path}: no required property found in the recorded body"
        for path in paths:
            status, answer = _send(emulator, rec.method, rec.path, rec.query, _without(rec.body, path))
            assert status == 400, (rec.path, path, status)
            err = answer["error"]
            assert err["code"] == "UserError"
            assert _target(path) in [d["target"] for d in err["details"]], (path, err)
            refused += 1
    return refused


def test_every_required_field_removed_from_a_maas_request_is_refused(emulator, azure_backend, make_spec, plan_for):
    azure_backend("maas").submit(plan_for(make_spec(), "maas"))
    puts = emulator.requests_to(r"/jobs/[^/]+$", "PUT")
    assert [r.status for r in puts] == [201]
    assert puts[0].body["properties"]["jobType"] == "FineTuning"
    targets = {_target(p) for p in Contract.load().required_paths("JobBase", puts[0].body)}
    # the fields Azure's 2024-10-01-preview definition requires on the job and on the fine-tuning vertical
    assert {
        "properties",
        "properties.jobType",
        "properties.fineTuningDetails",
        "properties.outputs",
        "properties.fineTuningDetails.model",
        "properties.fineTuningDetails.modelProvider",
        "properties.fineTuningDetails.taskType",
        "properties.fineTuningDetails.trainingData",
    } <= targets
    assert _assert_each_removal_refused(emulator, puts) == len(targets)
    assert len(emulator.jobs) == 1  # no variant created anything


def test_every_required_field_removed_from_maap_requests_is_refused(emulator, azure_backend, make_spec, plan_for):
    azure_backend("maap").submit(plan_for(_maap_spec(make_spec), "maap"))
    recorded = [
        r for r in emulator.requests if r.method == "PUT" and r.route in ("jobs.put", "computes.put", "assets.put")
    ]
    assert {r.route for r in recorded} == {"jobs.put", "computes.put", "assets.put"}
    assert _assert_each_removal_refused(emulator, recorded) > 20


@pytest.mark.parametrize(
    "properties,target",
    [
        ({"jobType": "FineTuning"}, "properties.fineTuningDetails"),
        (
            {
                "jobType": "FineTuning",
                "outputs": {},
                "fineTuningDetails": {"modelProvider": "Nope", "taskType": "ChatCompletion"},
            },
            "properties.fineTuningDetails.modelProvider",
        ),
        (
            {
                "jobType": "FineTuning",
                "outputs": {},
                "fineTuningDetails": {
                    "modelProvider": "Custom",
                    "taskType": "Bogus",
                    "model": {"jobInputType": "mlflow_model", "uri": "m"},
                    "trainingData": {"jobInputType": "uri_file", "uri": "t"},
                },
            },
            "properties.fineTuningDetails.taskType",
        ),
        (
            {
                "jobType": "FineTuning",
                "outputs": {},
                "fineTuningDetails": {
                    "modelProvider": "Custom",
                    "taskType": "ChatCompletion",
                    "model": {"jobInputType": "mlflow_model", "uri": "m"},
                    "trainingData": {"jobInputType": "uri_file", "uri": "t"},
                    "hyperParameters": {"epochs": {"n": 1}},
                },
            },
            "properties.fineTuningDetails.hyperParameters.epochs",
        ),
        ({"jobType": "Serverless"}, "properties.jobType"),
    ],
    ids=["only-jobType", "bad-modelProvider", "bad-taskType-no-data", "object-for-string", "unknown-jobType"],
)
def test_bodies_azure_refuses_are_refused(emulator, properties, target):
    path = emulator.workspace_id + "/jobs/refused"
    status, answer = _send(emulator, "PUT", path, {"api-version": "2024-10-01-preview"}, {"properties": properties})
    assert status == 400 and answer["error"]["code"] == "UserError"
    assert target in [d["target"] for d in answer["error"]["details"]]
    assert target in answer["error"]["message"] or len(answer["error"]["details"]) > 1
    assert "refused" not in emulator.jobs


def test_a_recorded_azure_request_is_accepted_and_enums_compare_case_insensitively(emulator):
    """The body azure-ai-ml 1.32 sent in Azure's own recorded fine-tuning test (taskType "textCompletion"; see
    azft/emulator/fixtures/maas_model_not_supported.yaml) passes the contract."""
    from azft.emulator.fixtures import load

    body = load("maas_model_not_supported")["request"]["body"]
    assert Contract.load().violations("JobBase", body) == []
