"""Online endpoints, their deployments and serverless endpoints in the emulator, driven by the real ``MLClient``:
PUT/GET/LIST/DELETE as long-running operations, keys, strict body checks, and the inference routes.

The model behind the emulator's scoring URLs is a deterministic stand-in (``azft.emulator.routes.inference``:
words drawn from a hash of the deployment and the messages), not tiny-phi3: the real tiny model is served by
``azft deploy`` on the local backend (tests/deploy/test_local_server.py)."""

from __future__ import annotations

import pytest
import requests
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint, ServerlessEndpoint
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

CHAT = {"messages": [{"role": "user", "content": "What is LoRA?"}], "max_tokens": 32}


def _deploy(ml_client, name="chat-ep", emulator=None):
    ep = ml_client.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name=name, auth_mode="key", tags={"azft.expires_at": "2026-12-05T00:00:00Z"})
    ).result()
    ml_client.online_deployments.begin_create_or_update(
        ManagedOnlineDeployment(
            name="azft",
            endpoint_name=name,
            model="azureml:ft-model:1",
            instance_type="Standard_NC24ads_A100_v4",
            instance_count=1,
        )
    ).result()
    return ep


@pytest.fixture(autouse=True)
def _registered_model(emulator):
    emulator.add_asset("models", "ft-model", "1", {"modelType": "mlflow_model"})


def test_online_endpoint_and_deployment_lifecycle(emulator, ml_client):
    ep = _deploy(ml_client)
    assert ep.provisioning_state.lower() == "succeeded" and ep.tags["azft.expires_at"].startswith("2026-12-05")
    assert ep.scoring_uri == f"{emulator.base_url}/_inference/online/chat-ep/score"
    dep = ml_client.online_deployments.get("azft", "chat-ep")
    assert dep.instance_type == "Standard_NC24ads_A100_v4" and dep.provisioning_state.lower() == "succeeded"
    assert [e.name for e in ml_client.online_endpoints.list()] == ["chat-ep"]
    assert [d.name for d in ml_client.online_deployments.list("chat-ep")] == ["azft"]
    assert emulator.requests_to(r"/mfeOperationsStatus/", "GET")  # PUTs are LROs the poller followed
    ml_client.online_endpoints.begin_delete("chat-ep").result()
    with pytest.raises(ResourceNotFoundError):
        ml_client.online_endpoints.get("chat-ep")
    with pytest.raises(ResourceNotFoundError):  # the endpoint's deployments went with it
        ml_client.online_deployments.get("azft", "chat-ep")
    assert not emulator.unmatched


def test_deployment_needs_its_endpoint_and_a_valid_body(emulator, ml_client):
    with pytest.raises(ResourceNotFoundError):
        ml_client.online_deployments.begin_create_or_update(
            ManagedOnlineDeployment(
                name="azft",
                endpoint_name="missing",
                model="azureml:ft-model:1",
                instance_type="Standard_NC24ads_A100_v4",
            )
        ).result()
    _deploy(ml_client, "has-no-model")
    with pytest.raises(HttpResponseError) as e:  # a deployment of a model the workspace does not have
        ml_client.online_deployments.begin_create_or_update(
            ManagedOnlineDeployment(
                name="other",
                endpoint_name="has-no-model",
                model="azureml:not-registered:3",
                instance_type="Standard_NC24ads_A100_v4",
            )
        ).result()
    assert e.value.status_code == 400 and "not-registered version 3 was not found" in str(e.value)
    base = emulator.workspace_id + "/onlineEndpoints/bad"
    token = emulator.make_credential().get_token("https://management.azure.com/.default").token
    for body, field in (
        ({"location": "eastus2"}, "properties"),
        ({"location": "eastus2", "properties": {"authMode": "Password"}}, "authMode"),
    ):
        r = requests.put(
            f"{emulator.base_url}{base}?api-version=2022-02-01-preview",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            verify=emulator.ca_pem_path,
            timeout=10,
        )
        assert r.status_code == 400 and field in r.text, r.text
    assert "bad" not in emulator.store.collection("onlineEndpoints")


def test_online_scoring_needs_the_key_and_answers_deterministically(emulator, ml_client):
    ep = _deploy(ml_client)
    verify = emulator.ca_pem_path
    assert requests.post(ep.scoring_uri, json=CHAT, verify=verify, timeout=10).status_code == 401
    assert (
        requests.post(
            ep.scoring_uri, json=CHAT, headers={"Authorization": "Bearer wrong"}, verify=verify, timeout=10
        ).status_code
        == 401
    )
    key = ml_client.online_endpoints.get_keys("chat-ep").primary_key
    auth = {"Authorization": f"Bearer {key}"}
    # no traffic yet: Azure's "no valid deployments" answer, unless the deployment is named
    assert requests.post(ep.scoring_uri, json=CHAT, headers=auth, verify=verify, timeout=10).status_code == 503
    named = requests.post(
        ep.scoring_uri, json=CHAT, headers={**auth, "azureml-model-deployment": "azft"}, verify=verify, timeout=10
    )
    assert named.status_code == 200
    ep.traffic = {"azft": 100}
    ml_client.online_endpoints.begin_create_or_update(ep).result()
    a = requests.post(ep.scoring_uri, json=CHAT, headers=auth, verify=verify, timeout=10).json()
    b = requests.post(ep.scoring_uri, json=CHAT, headers=auth, verify=verify, timeout=10).json()
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"] != ""
    assert a["usage"]["completion_tokens"] == len(a["choices"][0]["message"]["content"].split())
    scored = requests.post(
        ep.scoring_uri,
        headers=auth,
        verify=verify,
        timeout=10,
        json={"input_data": {"input_string": CHAT["messages"], "parameters": {"max_new_tokens": 32}}},
    ).json()
    assert scored == {"output": a["choices"][0]["message"]["content"]}
    bad = requests.post(
        ep.scoring_uri, json={"messages": [{"role": "robot", "content": "x"}]}, headers=auth, verify=verify, timeout=10
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages[0].role"
    # keys never reach the recorded requests
    assert key not in str([r.to_dict() for r in emulator.requests])


def test_serverless_endpoint_answers_chat_completions(emulator, ml_client):
    ep = ml_client.serverless_endpoints.begin_create_or_update(
        ServerlessEndpoint(
            name="ft-ep", model_id=emulator.workspace_id + "/models/ft-model/versions/1", tags={"azft.ttl": "8h"}
        )
    ).result()
    assert ml_client.serverless_endpoints.get("ft-ep").tags == {"azft.ttl": "8h"}
    key = ml_client.serverless_endpoints.get_keys("ft-ep").primary_key
    url = ep.scoring_uri + "/v1/chat/completions"
    r = requests.post(
        url, json=CHAT, headers={"Authorization": f"Bearer {key}"}, verify=emulator.ca_pem_path, timeout=10
    )
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    assert r.json()["model"] == "ft-model/versions/1"
    with pytest.raises(HttpResponseError):
        ml_client.serverless_endpoints.get("nope")
    ml_client.serverless_endpoints.begin_delete("ft-ep").result()
    assert (
        requests.post(
            url, json=CHAT, headers={"Authorization": f"Bearer {key}"}, verify=emulator.ca_pem_path, timeout=10
        ).status_code
        == 401
    )
