"""`azft deploy` / `azft endpoints` / `azft predict --endpoint` on the mock backend: the real maas (serverless
endpoint) and maap (managed online endpoint + deployment) code through the real ``MLClient`` against the emulator,
each command a fresh emulator over the saved workspace, as a user's shell runs them. The TTL clock is controlled
with ``AZFT_NOW`` (azft.deploy.records.now); the emulator's model is its deterministic stand-in."""

from __future__ import annotations

import json

import pytest

from azft.deploy import records

T0 = "2026-12-05T08:00:00Z"


def _submit(run_cli, make_spec, tmp_path, name: str, target: str, **sections) -> str:
    make_spec(name=name, output={"model_name": f"{name}-model"}, **sections)
    path = tmp_path / f"{name}.yaml"
    path.write_text(path.read_text() + f"mock:\n  target: {target}\n  seconds_per_state: 0.02\n")
    res = run_cli("submit", str(path), "--backend", "mock", "--wait", "--output", "json")
    assert res.code == 0, res.text
    info = json.loads(res.out)
    assert info["status"] == "Completed"
    return info["name"]


def _run_tags(job: str) -> dict:
    from azft.state import lookup_submission
    from azft.tracking import Tracker

    rec = lookup_submission(job) or {}
    tracker = Tracker(rec.get("tracking_uri"), rec.get("experiment") or "azft", quiet=True)
    return dict(tracker.store.read().get_run(tracker.store.journal.resolve(rec["mlflow_run_id"])).data.tags)


@pytest.fixture
def maas_job(run_cli, make_spec, tmp_path):
    return _submit(run_cli, make_spec, tmp_path, "bot", "maas")


def test_maas_deploy_predict_list_and_ttl_expiry(run_cli, maas_job, tmp_path, monkeypatch):
    monkeypatch.setenv("AZFT_NOW", T0)
    res = run_cli("deploy", maas_job, "--ttl", "8h", "--name", "bot-ep")
    assert res.code == 0, res.text
    assert "serverless endpoint bot-ep" in res.out and "/v1/chat/completions" in res.out
    assert "$0.80/hour" in res.out and "a guess" in res.out  # the catalog's hosting price is labelled a guess
    assert "emulator-primary" not in res.text  # no key without --show-key
    assert _run_tags(maas_job)["azft.deployment.name"] == "bot-ep"  # recorded on the job's MLflow run
    assert _run_tags(maas_job)["azft.deployment.expires_at"] == "2026-12-05T16:00:00Z"

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hello"}]})
        + "\n"
        + json.dumps({"prompt": "what is LoRA?"})
        + "\n"
    )
    res = run_cli("predict", "--endpoint", "bot-ep", "--data", str(prompts), "--out", str(tmp_path / "a.jsonl"))
    assert res.code == 0, res.text
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["response"] for r in rows)
    assert "emulator-primary" not in res.text

    monkeypatch.setenv("AZFT_NOW", "2026-12-05T10:30:00Z")
    listed = json.loads(run_cli("endpoints", "list", "--output", "json").out)
    assert [(r["name"], r["kind"], r["ttl"], r["expired"]) for r in listed] == [("bot-ep", "serverless", "8h", False)]
    assert listed[0]["age"] == "2h30m" and listed[0]["cost_so_far_usd"] == 2.0 and listed[0]["last_call_at"]
    table = run_cli("endpoints", "list")
    assert "bot-ep" in table.out and "~0.80" in table.out

    # the deadline is a tag on the Azure resource: any machine can find it
    from azft.backends.mock import MockBackend

    b = MockBackend()
    with b.workspace.session() as em:
        assert em.serverless_endpoints["bot-ep"]["tags"]["azft.expires_at"] == "2026-12-05T16:00:00Z"
    b.close()

    # past the TTL, any command deletes it and says so
    monkeypatch.setenv("AZFT_NOW", "2026-12-05T16:00:01Z")
    res = run_cli("endpoints", "list", "--output", "json")
    assert "passed its TTL of 8h" in res.err and "deleted" in res.err
    assert json.loads(res.out) == []
    b = MockBackend()
    with b.workspace.session() as em:
        assert "bot-ep" not in em.serverless_endpoints
    b.close()
    assert _run_tags(maas_job)["azft.deployment.status"] == "deleted"


def test_warn_only_keeps_the_deployment_and_warns_on_every_command(run_cli, maas_job, monkeypatch):
    monkeypatch.setenv("AZFT_NOW", T0)
    assert run_cli("deploy", maas_job, "--ttl", "1h", "--name", "warn-ep").code == 0
    monkeypatch.setenv("AZFT_NOW", "2026-12-05T09:30:00Z")
    monkeypatch.setenv("AZFT_TTL_ACTION", "warn")
    for args in (("endpoints", "list"), ("list",), ("endpoints", "list", "--output", "json")):
        res = run_cli(*args)
        assert "warn-ep" in res.err and "passed its TTL of 1h 30m ago and still exists" in res.err, res.err
    # gc (the CI step) deletes it regardless
    monkeypatch.delenv("AZFT_TTL_ACTION")
    monkeypatch.setenv("AZFT_TTL_ACTION", "warn")
    res = run_cli("endpoints", "gc", "--backend", "mock", "--output", "json")
    assert res.code == 0 and json.loads(res.out)["deleted"] == ["warn-ep"]
    assert "warn-ep" not in run_cli("endpoints", "list").text


def test_gc_finds_expired_endpoints_by_their_azure_tag_without_a_local_record(run_cli, maas_job, monkeypatch):
    monkeypatch.setenv("AZFT_NOW", T0)
    assert run_cli("deploy", maas_job, "--ttl", "2h", "--name", "other-machine").code == 0
    records.forget("other-machine")  # as if another machine had deployed it
    assert json.loads(run_cli("endpoints", "list", "-o", "json").out) == []
    seen = json.loads(run_cli("endpoints", "list", "--backend", "mock", "-o", "json").out)
    assert [(r["name"], r["recorded_here"], r["ttl"], r["hourly_usd"], r["job"]) for r in seen] == [
        ("other-machine", False, "2h", 0.8, maas_job)
    ]
    monkeypatch.setenv("AZFT_NOW", "2026-12-05T09:00:00Z")
    assert json.loads(run_cli("endpoints", "gc", "--backend", "mock", "--output", "json").out)["deleted"] == []
    monkeypatch.setenv("AZFT_NOW", "2026-12-05T10:00:00Z")
    res = run_cli("endpoints", "gc", "--backend", "mock", "--output", "json")
    assert json.loads(res.out)["deleted"] == ["other-machine"], res.text


def test_max_hourly_usd_refuses_before_anything_is_created(run_cli, maas_job):
    res = run_cli("deploy", maas_job, "--max-hourly-usd", "0.5", "--name", "cheap-ep")
    assert res.code == 2 and "above --max-hourly-usd 0.50" in res.err and "nothing was created" in res.err
    assert run_cli("endpoints", "list", "--output", "json").out.strip() == "[]"
    from azft.backends.mock import MockBackend

    b = MockBackend()
    with b.workspace.session() as em:
        assert not em.serverless_endpoints
    b.close()


def test_maap_deploys_an_online_endpoint_on_a_size_that_fits(run_cli, make_spec, tmp_path, monkeypatch):
    job = _submit(
        run_cli,
        make_spec,
        tmp_path,
        "mp",
        "maap",
        model="phi-3-mini-4k-instruct",
        method="lora",
        compute={
            "cluster": None,
            "create_cluster": False,
            "instance_type": "Standard_NC24ads_A100_v4",
            "instance_count": 1,
        },
    )
    over = run_cli("deploy", job, "--name", "mp-ep", "--max-hourly-usd", "0.1")
    assert over.code == 2 and "$0.53/hour, above --max-hourly-usd 0.10" in over.err
    res = run_cli("deploy", job, "--name", "mp-ep", "--ttl", "30m", "--show-key", "--output", "json")
    assert res.code == 0, res.text
    dep = json.loads(res.out)  # the SDK's progress dots go to stderr, not into the JSON
    assert dep["kind"] == "online" and dep["instance_type"] == "Standard_NC4as_T4_v3"  # the cheapest that fits
    assert dep["key"].startswith("emulator-primary-online-mp-ep") and dep["url"].endswith("/score")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    res = run_cli("predict", "--endpoint", "mp-ep", "--data", str(prompts), "--out", str(tmp_path / "o.jsonl"))
    assert res.code == 0, res.text
    assert json.loads((tmp_path / "o.jsonl").read_text())["response"]
    assert run_cli("endpoints", "delete", "mp-ep").code == 0
    assert run_cli("endpoints", "list", "--output", "json").out.strip() == "[]"


def test_an_instance_type_too_small_for_the_model_is_refused_with_the_sizes_that_fit():
    from azft.catalog import load_catalog
    from azft.deploy.costs import choose_instance
    from azft.errors import UsageError

    cat = load_catalog()
    # Phi-3-medium: 14B parameters in fp16 (~26 GiB) plus a 4k-token KV cache: a 16 GB T4 cannot hold it
    with pytest.raises(UsageError) as e:
        choose_instance(cat, "phi-3-medium-4k-instruct", "Standard_NC4as_T4_v3")
    assert "needs about" in e.value.message and "Standard_NC4as_T4_v3 has 16 GB" in e.value.message
    assert "Standard_NC24ads_A100_v4" in (e.value.hint or "") and "T4" not in (e.value.hint or "")
    assert choose_instance(cat, "phi-3-mini-4k-instruct", None)[0] == "Standard_NC4as_T4_v3"


def test_endpoint_calls_are_retried_and_never_show_the_key(emulator, ml_client):
    """The client's azure-core pipeline retries 503/429 on the inference POST (faults injected in the emulator)."""
    from azure.ai.ml.entities import ServerlessEndpoint

    from azft.deploy.client import _endpoint
    from azft.errors import AzureError

    emulator.add_asset("models", "m", "1", {"modelType": "mlflow_model"})
    ep = ml_client.serverless_endpoints.begin_create_or_update(
        ServerlessEndpoint(name="retry-ep", model_id=emulator.workspace_id + "/models/m/versions/1")
    ).result()
    key = ml_client.serverless_endpoints.get_keys("retry-ep").primary_key
    url = ep.scoring_uri + "/v1/chat/completions"
    dep = records.Deployment(name="retry-ep", backend="mock", kind="serverless", job="j", created=0.0)
    emulator.inject(r"/_inference/serverless/retry-ep/", status=503, times=2)
    emulator.inject(r"/_inference/serverless/retry-ep/", status=429, retry_after=0.01, times=1)
    text, answer = _endpoint(dep, url, key, emulator.ca_pem_path, 4, 0.01).chat(
        [{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert text and answer["usage"]["completion_tokens"] <= 8
    assert len(emulator.requests_to(r"/_inference/serverless/retry-ep/", "POST")) == 4
    with pytest.raises(AzureError) as e:
        _endpoint(dep, url, "not-the-key", emulator.ca_pem_path, 0, 0.01).chat([{"role": "user", "content": "x"}])
    assert "HTTP 401" in e.value.message and "not-the-key" not in e.value.message + str(e.value.hint)


@pytest.mark.parametrize(
    "args, says",
    [
        *[(("--ttl", t), "--ttl") for t in ("abc", "0h", "-1h", "8", "100d", "8 hours", "1e9h")],
        *[(("--name", n), "endpoint name") for n in ("a", "-ep", "ep-", "x" * 33, "../etc", "ep_1", "ép")],
        (("--max-hourly-usd", "-1"), "-1"),
    ],
)
def test_bad_deploy_options_are_refused_before_any_azure_call(run_cli, args, says):
    from azft.state import record_submission

    record_submission("some-job", backend="maas", options={"workspace": {"subscription_id": "x"}})
    res = run_cli("deploy", "some-job", *args)
    assert res.code == 2 and says in res.err and "Traceback" not in res.text, res.text
    assert not records.records_path().exists()


def test_a_damaged_record_or_clock_never_stops_a_command(run_cli, monkeypatch):
    from azft.state import write_private

    write_private(
        records.records_path(),
        json.dumps(
            {
                "a": {"name": "a", "kind": "local", "backend": "local", "job": "j", "created": "yesterday"},
                "b": "not an object",
                "c": {"name": "c"},
            }
        ),
    )
    res = run_cli("endpoints", "list", "--output", "json")
    assert res.code == 0 and json.loads(res.out) == []
    write_private(records.records_path(), "{not json")
    assert run_cli("endpoints", "list").code == 0
    monkeypatch.setenv("AZFT_NOW", "next tuesday")
    write_private(
        records.records_path(),
        json.dumps(
            {"d": {"name": "d", "kind": "local", "backend": "local", "job": "j", "created": 0.0, "expires_at": 1.0}}
        ),
    )
    res = run_cli("list")
    assert res.code == 0 and "AZFT_NOW" in res.err
