"""`azft eval JOB` for models that are not here, through the CLI against the emulator, each command a fresh emulator
over the saved workspace as a user's shell runs them: a maap job's evaluation submitted as the evaluate component
against the job's outputs (the body held to Azure's contract), and a maas job's deployed endpoint answering the
samples (the emulator's deterministic stand-in model)."""

from __future__ import annotations

import json

from .test_deploy_mock import _submit

MAAP = {
    "model": "phi-3-mini-4k-instruct",
    "method": "lora",
    "compute": {
        "cluster": None,
        "create_cluster": False,
        "instance_type": "Standard_NC24ads_A100_v4",
        "instance_count": 1,
    },
}


def _sent_eval_body(name: str) -> dict:
    from azft.backends.mock import MockBackend

    b = MockBackend()
    with b.workspace.session() as em:
        body = json.loads(json.dumps(em.jobs[name].body))
    b.close()
    return body


def test_maap_eval_submits_the_evaluate_component_against_the_jobs_outputs(run_cli, make_spec, tmp_path):
    job = _submit(run_cli, make_spec, tmp_path, "ev", "maap", **MAAP)
    res = run_cli("eval", job, "--samples", "3", "--max-new-tokens", "32", "--output", "json")
    assert res.code == 0, res.text
    out = json.loads(res.out)
    name = out["evaluation_job"]
    assert out["submitted"] and name.startswith(f"{job}-eval-")
    assert out["trained_model"] == f"azureml://jobs/{job}/outputs/model_output"

    props = _sent_eval_body(name)["properties"]
    assert props["jobType"] == "Pipeline" and list(props["jobs"]) == ["evaluate"]
    step = props["jobs"]["evaluate"]
    inputs = step["inputs"]
    assert inputs["trained_model"] == {"uri": out["trained_model"], "job_input_type": "uri_folder"}
    assert inputs["model"]["value"] == "microsoft/Phi-3-mini-4k-instruct"  # the training job's own values
    assert inputs["model_path"]["uri"].startswith("azureml://registries/azureml/models/Phi-3-mini-4k-instruct/")
    assert inputs["num_samples"]["value"] == "3" and inputs["max_new_tokens"]["value"] == "32"
    assert inputs["train_data"]["job_input_type"] == "uri_file"  # the job had no validation file
    assert step["computeId"].endswith("/computes/" + out["compute"])
    assert props["tags"]["azft.evaluates"] == job

    # the same evaluation asked again is the same job; azft status finds it like any submission
    again = json.loads(run_cli("eval", job, "--samples", "3", "--max-new-tokens", "32", "-o", "json").out)
    assert again["evaluation_job"] == name and not again["submitted"]
    st = run_cli("wait", name, "--output", "json")
    assert st.code == 0, st.text
    assert json.loads(st.out)["status"] == "Completed"


def test_maap_eval_checks_data_before_anything_is_sent_and_refuses_base(run_cli, make_spec, tmp_path):
    job = _submit(run_cli, make_spec, tmp_path, "ed", "maap", **MAAP)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
        '{"messages": [{"role": "robot", "content": "x"}]}\n'
    )
    res = run_cli("eval", job, "--data", str(bad))
    assert res.code == 2 and "bad.jsonl:2" in res.err and "Traceback" not in res.text
    res = run_cli("eval", job, "--base")
    assert res.code == 2 and "--base" in res.err

    good = tmp_path / "held-out.jsonl"
    good.write_text(bad.read_text().splitlines()[0] + "\n")
    res = run_cli("eval", job, "--data", str(good), "-o", "json")
    assert res.code == 0, res.text
    out = json.loads(res.out)
    inputs = _sent_eval_body(out["evaluation_job"])["properties"]["jobs"]["evaluate"]["inputs"]
    assert inputs["validation_data"]["uri"] == out["data"] and out["data"].endswith("/held-out.jsonl")
    assert "train_data" not in inputs


def test_the_emulator_refuses_steps_azure_would_refuse(emulator):
    """A step input the component does not declare, a required one missing, and (a guess, labelled in the emulator)
    another job's output that does not exist: refused with ARM's 400 naming the step input."""
    from .test_strict_contract import _send

    ws = emulator.store.arm_id("jobs", "x").rsplit("/jobs/", 1)[0]
    q = {"api-version": "2024-01-01-preview"}
    spec = {
        "name": "azft_evaluate",
        "type": "command",
        "command": "python evaluate.py",
        "inputs": {
            "trained_model": {"type": "uri_folder"},
            "task": {"type": "string", "default": "chat"},
            "model": {"type": "string", "optional": True},
        },
    }
    status, _ = _send(
        emulator, "PUT", ws + "/components/azureml_anonymous/versions/1", q, {"properties": {"componentSpec": spec}}
    )
    assert status in (200, 201)

    def put(name, inputs):
        step = {"type": "command", "componentId": ws + "/components/azureml_anonymous/versions/1", "inputs": inputs}
        return _send(
            emulator,
            "PUT",
            ws + f"/jobs/{name}",
            q,
            {"properties": {"jobType": "Pipeline", "jobs": {"evaluate": step}, "inputs": {}, "outputs": {}}},
        )

    def model(uri):
        return {"trained_model": {"uri": uri, "job_input_type": "uri_folder"}}

    status, body = put(
        "e1", {**model("azureml://datastores/d/paths/m"), "rows": {"value": "1", "job_input_type": "literal"}}
    )
    assert status == 400 and body["error"]["details"][0]["target"] == "properties.jobs.evaluate.inputs.rows"
    status, body = put("e2", {"task": {"value": "chat", "job_input_type": "literal"}})
    assert status == 400 and "Required input 'trained_model'" in body["error"]["message"]
    status, body = put("e3", model("azureml://jobs/nope/outputs/model_output"))
    assert status == 400 and "job 'nope' was not found" in body["error"]["message"]
    status, body = put("e4", model("azureml://jobs/e5/outputs/x"))  # e5 does not exist yet either
    assert status == 400
    assert put("e5", model("azureml://datastores/d/paths/m"))[0] == 201
    status, body = put("e6", model("azureml://jobs/e5/outputs/model_output"))
    assert status == 400 and "has no output 'model_output'" in body["error"]["message"]


def test_maas_eval_answers_the_samples_through_the_jobs_deployed_endpoint(run_cli, make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("AZFT_NOW", "2026-12-05T08:00:00Z")
    job = _submit(run_cli, make_spec, tmp_path, "sv", "maas")
    res = run_cli("eval", job)
    assert res.code == 2 and f"azft deploy {job}" in res.err and "Traceback" not in res.text
    assert run_cli("deploy", job, "--ttl", "1h", "--name", "sv-ep").code == 0

    res = run_cli("eval", job, "--samples", "2", "--max-new-tokens", "16", "--output", "json")
    assert res.code == 0, res.text
    out = json.loads(res.out)
    assert out["endpoint"] == "sv-ep" and out["calls"] == 2 and out["models"] == {}
    assert [s["line"] for s in out["samples"]] == [1, 2]
    assert all(s["fine-tuned"] and s["reference"] for s in out["samples"])  # the training file's rows
    saved = out["saved"]  # eval.json and report.md, logged to the job's MLflow run
    assert saved["mlflow_run_id"] and "| fine-tuned |" in open(f"{saved['dir']}/report.md").read()
    assert "emulator-primary" not in res.text  # the key never shows

    table = run_cli("eval", job, "--endpoint", "sv-ep", "--samples", "1")
    assert table.code == 0 and "through endpoint sv-ep" in table.out and "no loss" in table.out
    assert run_cli("eval", job, "--endpoint", "nope").code == 2


def test_chat_with_a_deployed_endpoint_keeps_the_conversation(run_cli, make_spec, tmp_path, monkeypatch):
    import io

    monkeypatch.setenv("AZFT_NOW", "2026-12-05T08:00:00Z")
    job = _submit(run_cli, make_spec, tmp_path, "sc", "maas")
    assert run_cli("deploy", job, "--ttl", "1h", "--name", "sc-ep").code == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("hello there\nand then?\n/reset\nhello there\n/exit\nnever\n"))
    res = run_cli("chat", "--endpoint", "sc-ep", "--system", "Be brief.", "--max-new-tokens", "12", "-o", "json")
    assert res.code == 0, res.text
    turns = [json.loads(line) for line in res.out.splitlines()]
    assert [t["user"] for t in turns] == ["hello there", "and then?", "hello there"]
    assert all(t["assistant"] and t["finish_reason"] for t in turns)
    # after /reset the same first message, in a fresh conversation, gets the same answer (the stand-in model is
    # deterministic in the messages it is sent)
    assert turns[0]["assistant"] == turns[2]["assistant"] != turns[1]["assistant"]
    assert "(new conversation)" in res.err and "emulator-primary" not in res.text

    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n"))
    res = run_cli("chat", "--endpoint", "nope")
    assert res.code == 2 and "no deployment named 'nope'" in res.err
    assert run_cli("chat").code == 2 and run_cli("chat", "--endpoint", "sc-ep", "--base").code == 2
