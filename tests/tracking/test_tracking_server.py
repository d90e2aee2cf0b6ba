"""Submissions tracked on a real `mlflow server` (127.0.0.1, SQLite backend, artifacts served by the server)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from azft.tracking import Tracker

LOSS = [(s, round(2.5 * 0.8**s, 4)) for s in range(1, 9)]
EVAL = [(4, 1.3), (8, 0.9)]


def _artifacts(tracker: Tracker, run_id: str, path: str | None = None) -> set[str]:
    return {f.path for f in tracker.store.client().list_artifacts(run_id, path)}


def _history_rows(tracker: Tracker, run_id: str, key: str) -> list[tuple[int, float]]:
    """Every stored row, duplicates included (Tracker.metric_history de-duplicates by step)."""
    return sorted((m.step, m.value) for m in tracker.store.client().get_metric_history(run_id, key))


def test_local_submission_training_logs_into_the_run_itself(mlflow_server, workdir: Path, make_spec):
    tracker = Tracker(mlflow_server, "server-local")
    run_id = tracker.start_submission(
        spec=make_spec(),
        plan={"backend": "local", "device": "cpu"},
        data_report={"rows": 64},
        backend="local",
        job_name="local-job-1",
        studio_url=None,
        tags={"ci": "true"},
    )
    env = tracker.run_env(run_id)
    assert env == {"MLFLOW_TRACKING_URI": mlflow_server, "MLFLOW_RUN_ID": run_id}

    # The training recipe resumes the run from MLFLOW_RUN_ID / MLFLOW_TRACKING_URI (as Hugging Face's MLflow
    # callback does); a separate process, like the local backend's training subprocess.
    script = textwrap.dedent(f"""
        import mlflow
        with mlflow.start_run():
            for step, value in {LOSS!r}:
                mlflow.log_metric("loss", value, step=step)
            for step, value in {EVAL!r}:
                mlflow.log_metric("eval_loss", value, step=step)
    """)
    subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, check=True, timeout=120)

    # the orchestrator copies Job.metrics_history() as well (the server-down path): nothing is doubled
    tracker.log_metrics(run_id, {"loss": LOSS, "eval_loss": EVAL})
    tracker.log_final(
        run_id,
        {"train_loss": 1.1, "eval_loss": 0.9},
        "Completed",
        outputs={"model_output": str(workdir / "outputs" / "adapter")},
    )

    run = tracker.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert _history_rows(tracker, run_id, "loss") == LOSS
    assert _history_rows(tracker, run_id, "eval_loss") == EVAL
    assert run.data.metrics["train_loss"] == 1.1
    assert run.data.params["training.learning_rate"] == "0.0002"
    assert run.data.tags["azft.backend"] == "local" and run.data.tags["ci"] == "true"
    assert run.data.tags["azft.output.model_output"].endswith("outputs/adapter")
    assert {"spec.json", "plan.json", "data_report.json"} <= _artifacts(tracker, run_id)


def test_mock_submission_records_the_simulated_curves(mlflow_server, workdir: Path, make_spec):
    # The mock backend's Job.metrics_history() returns this shape; the orchestrator hands it to log_metrics.
    history = {"loss": [(s, 3.0 / (1 + s)) for s in range(0, 50)], "learning_rate": [(s, 2e-4) for s in range(50)]}
    tracker = Tracker(mlflow_server, "server-mock")
    run_id = tracker.start_submission(
        spec=make_spec(),
        plan={"backend": "mock"},
        data_report=None,
        backend="mock",
        job_name="mock-job-1",
        studio_url="https://ml.azure.com/runs/mock-job-1?wsid=/subscriptions/x",
        tags={},
    )
    tracker.log_metrics(run_id, history)
    tracker.log_final(run_id, {"train_loss": history["loss"][-1][1]}, "FINISHED")
    run = tracker.get_run(run_id)
    assert tracker.metric_history(run_id, "loss") == history["loss"]
    assert run.data.tags["azft.studio_url"].startswith("https://ml.azure.com/runs/mock-job-1")
    assert run.info.run_name == "mock-job-1"
    assert tracker.find_run_for_job("mock-job-1") == run_id
    assert "data_report.json" not in _artifacts(tracker, run_id)


def test_server_down_mid_run_loses_nothing(mlflow_server, workdir: Path, make_spec, capsys):
    tracker = Tracker(mlflow_server, "server-outage", probe_timeout=1.0)
    run_id = tracker.start_submission(
        spec=make_spec(),
        plan={"backend": "mock"},
        data_report={"rows": 10},
        backend="mock",
        job_name="outage-job-1",
        studio_url=None,
        tags={},
    )
    tracker.log_metrics(run_id, {"loss": LOSS[:4]})

    mlflow_server.stop()
    # the job goes on: none of these raise, they are kept on disk and the user is told
    tracker.log_metrics(run_id, {"loss": LOSS})  # the orchestrator's copy overlaps what was already sent
    report = workdir / "metrics.json"
    report.write_text(json.dumps({"train_loss": 1.0}))
    tracker.log_artifact(run_id, report)
    report.unlink()  # the buffered artifact survives its source being removed
    tracker.log_final(run_id, {"train_loss": 1.0}, "Completed")
    second = tracker.start_submission(
        spec=make_spec(),
        plan={"backend": "mock"},
        data_report=None,
        backend="mock",
        job_name="outage-job-2",
        studio_url=None,
        tags={},
    )
    tracker.log_metrics(second, {"loss": LOSS})
    tracker.log_final(second, {"train_loss": 0.5}, "Failed")
    assert second.startswith("pending-")
    assert tracker.pending_count() > 0
    err = capsys.readouterr().err
    assert "not answering" in err and "mlflow-buffer" in err
    journal = tracker.store.journal.journal_path.read_text()
    saved_journal = journal  # to replay everything once more below, as after a crash mid-flush

    mlflow_server.start()
    # another azft process (a new Tracker) finds the buffer and sends it with its first call
    later = Tracker(mlflow_server, "server-outage")
    assert later.find_run_for_job("outage-job-2") is not None
    assert later.pending_count() == 0
    assert "sent" in capsys.readouterr().err

    second_id = later.resolve(second)
    assert second_id and not second_id.startswith("pending-")
    assert later.find_run_for_job("outage-job-2") == second_id
    for rid, status, final in ((run_id, "FINISHED", 1.0), (second_id, "FAILED", 0.5)):
        run = later.get_run(rid)
        assert run.info.status == status
        assert run.data.metrics["train_loss"] == final
        assert _history_rows(later, rid, "loss") == LOSS
    assert "metrics.json" in _artifacts(later, run_id)
    assert {"spec.json", "plan.json"} <= _artifacts(later, second_id)
    assert later.get_run(second_id).data.params["lora.lora_r"] == "8"

    # a replay of operations already sent (a crash before they were marked done) writes nothing twice
    later.store.journal.journal_path.write_text(saved_journal)
    state = later.store.journal.load_state()
    state["applied"] = []
    later.store.journal.save_state(state)
    assert later.flush() > 0
    assert later.flush() == 0
    assert _history_rows(later, run_id, "loss") == LOSS
    assert _history_rows(later, second_id, "loss") == LOSS
    exp = later.store.client().get_experiment_by_name("server-outage")
    jobs = [r.data.tags["azft.job_name"] for r in later.store.client().search_runs([exp.experiment_id])]
    assert sorted(jobs) == ["outage-job-1", "outage-job-2"]


@pytest.fixture
def black_hole():
    """A TCP port that accepts connections and never answers: a tracking server that hangs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    t.join()
    for c in held:
        c.close()
    sock.close()


def test_a_hanging_server_never_blocks_a_submit(black_hole, workdir: Path, make_spec, capsys):
    tracker = Tracker(black_hole, "slow", probe_timeout=0.5, request_timeout=1)
    run_id = tracker.start_submission(
        spec=make_spec(),
        plan={},
        data_report=None,
        backend="mock",
        job_name="slow-job",
        studio_url=None,
        tags={},
    )
    tracker.log_final(run_id, {"train_loss": 1.0}, "Completed")
    assert run_id.startswith("pending-")
    assert tracker.run_env(run_id) == {}  # training does not try to log into a run that does not exist yet
    kept = [(op["op"], op.get("name")) for op in tracker.store.journal.pending()]
    assert kept == [
        ("create_run", None),
        ("params", None),
        ("artifact", "spec.json"),
        ("artifact", "plan.json"),
        ("final", None),
    ]
    assert "not answering" in capsys.readouterr().err
    assert tracker.find_run_for_job("slow-job") == run_id
