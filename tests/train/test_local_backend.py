"""`--backend local`: the component's own command, detached jobs, MLflow, kill-and-resume, ZeRO with 2 processes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from azft.backends.base import JobStatus
from azft.backends.local import ComponentCommand, LocalBackend
from azft.errors import DataError, UsageError
from tests.train.train_helpers import COMPONENT, make_plan


def inputs(data_dir: Path, **extra) -> dict:
    base = {
        "model": "tiny-phi3",
        "train_data": str(data_dir / "train.jsonl"),
        "validation_data": str(data_dir / "val.jsonl"),
        "learning_rate": 5e-3,
        "batch_size": 8,
        "max_steps": 4,
        "max_seq_length": 256,
        "seed": 7,
    }
    base.update(extra)
    return base


def test_command_line_is_rendered_from_the_component_yaml(data_dir, tmp_path):
    cmd = ComponentCommand(COMPONENT)
    argv = cmd.argv(
        {"train_data": str(data_dir / "train.jsonl"), "packing": False, "learning_rate": 1e-4},
        {"model_output": "/o/model", "metrics": "/o/metrics"},
    )
    assert argv[:2] == ["python", "train.py"]
    opts = dict(zip(argv[2::2], argv[3::2]))
    assert opts["--train_data"] == str(data_dir / "train.jsonl")
    assert opts["--packing"] == "False" and opts["--learning_rate"] == "0.0001"
    assert opts["--model"] == "tiny-phi3" and opts["--method"] == "lora"  # component defaults
    assert "--validation_data" not in opts and "--model_path" not in opts  # optional blocks left out
    assert opts["--model_output"] == "/o/model"
    with_val = cmd.argv(
        {"train_data": str(data_dir / "train.jsonl"), "validation_data": str(data_dir / "val.jsonl")},
        {"model_output": "/o/m", "metrics": "/o/x"},
    )
    assert "--validation_data" in with_val
    with pytest.raises(UsageError, match="unknown component input"):
        cmd.argv(
            {"train_data": str(data_dir / "train.jsonl"), "learning_rte": 1}, {"model_output": "m", "metrics": "x"}
        )
    with pytest.raises(DataError, match="train_data"):
        cmd.argv({"train_data": str(tmp_path / "missing.jsonl")}, {"model_output": "m", "metrics": "x"})


def test_local_job_trains_tracks_and_is_found_again(data_dir, azft_cache):
    backend = LocalBackend()
    job = backend.submit(make_plan("quick-lora", inputs(data_dir)))
    lines = list(job.logs(follow=True))
    info = job.info()
    assert info.status == JobStatus.COMPLETED, "\n".join(lines[-30:])
    assert any(line.startswith("step 4/4") and "tok/s" in line and "ETA" in line for line in lines)
    noise = [line for line in lines if "Warning" in line or "[WARNING]" in line or "warnings.warn(" in line]
    assert not noise, noise  # no library deprecation or accelerator-guessing noise in the job's log

    # a new process (a new backend object) finds the job, its metrics and its outputs
    again = LocalBackend().get_job("quick-lora")
    info = again.info()
    assert info.status == JobStatus.COMPLETED and info.metrics["steps"] == 4
    assert Path(info.outputs["model_output"], "adapter_model.safetensors").exists()
    assert Path(info.outputs["metrics"], "loss_curve.png").exists()
    assert [s for s, _ in again.metrics_history()["train_loss"]] == [1, 2, 3, 4]
    assert [j.name for j in LocalBackend().list_jobs()] == ["quick-lora"]
    # re-submitting the same plan finds the finished job instead of training again
    assert LocalBackend().submit(make_plan("quick-lora", inputs(data_dir))).info().extra["attempt"] == 1
    # the run measured this machine's speed: local plans of the same configuration estimate time from it
    from azft import throughput

    speed, source = throughput.local_speed("tiny-phi3", "lora", throughput.device_of("auto"), 1, 0.001)
    assert source.startswith("measured on this machine by local job quick-lora")
    assert speed == pytest.approx(info.metrics["tokens_per_second"], rel=0.01)

    # MLflow: the resolved configuration as params, every step's metrics, the artifacts
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{Path(os.environ['AZFT_HOME']) / '.azft' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(info.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["method"] == "lora" and float(run.data.params["learning_rate"]) == 5e-3
    assert run.data.tags["azft.job_name"] == "quick-lora"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2, 3, 4]
    assert client.get_metric_history(run.info.run_id, "eval_loss")
    # one name per meaning (docs/metrics.md): no `final_` copies, the scheduled rate apart from the learning_rate param
    names = set(run.data.metrics)
    assert {"train_loss", "train_loss_mean", "scheduled_lr", "epochs_completed", "steps"} <= names
    assert not {n for n in names if n.startswith("final_")} | ({"loss", "epoch", "epochs", "learning_rate"} & names)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model", "loss_curve.png", "metrics.json", "resolved_config.json"} <= artifacts
    assert "model/adapter_model.safetensors" in {a.path for a in client.list_artifacts(run.info.run_id, "model")}


def test_bad_input_fails_with_the_recipe_message(data_dir, azft_cache):
    job = LocalBackend().submit(make_plan("qlora-cpu", inputs(data_dir, method="qlora")))
    info = job.wait(poll_interval=0.5, timeout=240)
    assert info.status == JobStatus.FAILED
    assert info.error.startswith("method qlora") and "CUDA" in info.error


def _wait_for(predicate, timeout=240.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_killed_job_resumes_to_the_same_final_loss(data_dir, azft_cache):
    settings = dict(batch_size=4, max_steps=40, save_steps=5, learning_rate=5e-3, lora_dropout=0.1)
    backend = LocalBackend()
    straight = backend.submit(make_plan("straight", inputs(data_dir, **settings)))

    killed = backend.submit(make_plan("killed", inputs(data_dir, **settings)))
    ckpts = Path(killed.info().outputs["model_output"]) / "checkpoints"
    assert _wait_for(lambda: (ckpts / "checkpoint-10" / "trainer_state.json").exists())
    os.killpg(killed.state()["pgid"], signal.SIGKILL)  # a crash: no clean shutdown, no exit code
    assert _wait_for(lambda: killed.info().status.terminal, timeout=30)
    info = killed.info()
    assert info.status == JobStatus.FAILED and "resume" in info.error
    assert "metrics.json" not in os.listdir(info.outputs["metrics"])  # it really was cut short

    resumed = LocalBackend().submit(make_plan("killed", inputs(data_dir, **settings)))  # same job name
    r = resumed.wait(poll_interval=0.5, timeout=300)
    s = straight.wait(poll_interval=0.5, timeout=300)
    assert r.status == s.status == JobStatus.COMPLETED, "\n".join(list(resumed.logs())[-20:])
    assert r.extra["attempt"] == 2 and r.metrics["resumed_from_step"] >= 10
    assert r.metrics["steps"] == s.metrics["steps"] == 40
    assert abs(r.metrics["train_loss"] - s.metrics["train_loss"]) < 1e-3
    assert abs(r.metrics["eval_loss"] - s.metrics["eval_loss"]) < 1e-3
    # the resumed run's history has each step once
    steps = [st for st, _ in resumed.metrics_history()["train_loss"]]
    assert steps == list(range(1, 41))


def test_cancel_and_force(data_dir, azft_cache):
    backend = LocalBackend()
    job = backend.submit(make_plan("to-cancel", inputs(data_dir, max_steps=2000, batch_size=2)))
    assert _wait_for(lambda: "step " in (Path(job.info().extra["log"]).read_text()), timeout=240)
    running = backend.submit(make_plan("to-cancel", inputs(data_dir, max_steps=2000, batch_size=2)))
    assert running.info().status == JobStatus.RUNNING  # same job, not a second process
    job.cancel()
    assert LocalBackend().get_job("to-cancel").info().status == JobStatus.CANCELED
    fresh = backend.submit(make_plan("to-cancel", inputs(data_dir, max_steps=1)), force=True)
    assert fresh.name == "to-cancel-2"
    assert fresh.wait(poll_interval=0.5, timeout=240).status == JobStatus.COMPLETED
    with pytest.raises(UsageError, match="no local job"):
        backend.get_job("never-submitted")


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_two_process_training(stage, data_dir, azft_cache):
    """Two processes on this CPU: torchrun (DDP over gloo) without ZeRO, the deepspeed launcher with it."""
    job = LocalBackend().submit(make_plan(f"zero{stage}", inputs(data_dir, batch_size=4), stage=stage, num_processes=2))
    info = job.wait(poll_interval=0.5, timeout=400)
    log = Path(info.extra["log"]).read_text()
    assert info.status == JobStatus.COMPLETED, log[-3000:]
    launcher = "deepspeed.launcher.runner" if stage else "torch.distributed.run"
    assert launcher in " ".join(info.extra["command"])
    assert f"processes 2 | ZeRO-{stage}" in log if stage else "processes 2" in log
    assert info.metrics["steps"] == 4 and info.metrics["eval_loss"] > 0
    from safetensors.torch import load_file

    adapter = load_file(str(Path(info.outputs["model_output"]) / "adapter_model.safetensors"))
    assert adapter and all(t.numel() > 0 for t in adapter.values())  # ZeRO-3 gathered the full weights
    resolved = json.loads(Path(info.outputs["metrics"], "resolved_config.json").read_text())
    assert resolved["world_size"] == 2
    if stage:
        assert resolved["deepspeed_config"]["zero_optimization"]["stage"] == stage
    else:
        assert resolved["deepspeed_config"] is None
