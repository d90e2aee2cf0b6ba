"""`azft runs list|show|compare|flush` and `azft results` against a real tracking server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from azft.cli_runs import results, runs
from azft.errors import UsageError
from azft.tracking import Tracker

EXPERIMENT = "cli-compare"


@pytest.fixture(scope="module")
def three_runs(mlflow_server, tmp_path_factory):
    """A local, a mock and a maas-like run; only the local one has eval loss."""
    home = tmp_path_factory.mktemp("cli-project")
    tracker = Tracker(mlflow_server, EXPERIMENT, buffer_dir=home / "buffer")
    made = {}
    for job, backend, lr, scale, with_eval in (
        ("cmp-local", "local", 2e-4, 1.0, True),
        ("cmp-mock", "mock", 1e-4, 1.2, False),
        ("cmp-maas", "maas", 5e-5, 0.8, False),
    ):
        spec = {
            "experiment": EXPERIMENT,
            "model": {"name": "microsoft/Phi-3-mini-4k-instruct"},
            "method": "lora",
            "task": "chat",
            "training": {"epochs": 1, "learning_rate": lr, "batch_size": 2},
        }
        run_id = tracker.start_submission(
            spec=spec,
            plan={"backend": backend},
            data_report=None,
            backend=backend,
            job_name=job,
            studio_url=None,
            tags={},
        )
        history = {"loss": [(s, scale * 2.0 / (1 + 0.3 * s)) for s in range(20)]}
        if with_eval:
            history["eval_loss"] = [(s, scale * 2.2 / (1 + 0.3 * s)) for s in (5, 10, 15, 19)]
        tracker.log_metrics(run_id, history)
        final = {"train_loss": history["loss"][-1][1]}
        if with_eval:
            final["eval_loss"] = history["eval_loss"][-1][1]
        tracker.log_final(run_id, final, "Completed", outputs={"model_output": f"azureml://jobs/{job}/outputs/model"})
        made[job] = run_id
    return made


def _run(cmd, args, uri):
    return CliRunner().invoke(cmd, [*args, "--tracking-uri", uri], catch_exceptions=True)


def test_runs_list_shows_key_params_and_final_metrics(mlflow_server, three_runs):
    res = _run(runs, ["list", "--experiment", EXPERIMENT, "--output", "json"], mlflow_server)
    assert res.exit_code == 0, res.output
    listed = {r["job_name"]: r for r in json.loads(res.output)["runs"]}
    assert set(listed) == set(three_runs)
    assert listed["cmp-mock"]["params"]["learning_rate"] == "0.0001"
    assert listed["cmp-maas"]["backend"] == "maas"
    assert listed["cmp-local"]["metrics"]["eval_loss"] == pytest.approx(2.2 / (1 + 0.3 * 19))
    table = _run(runs, ["list", "--experiment", EXPERIMENT], mlflow_server)
    assert table.exit_code == 0 and "cmp-local" in table.output and "maas" in table.output


def test_runs_show_accepts_a_run_id_or_a_job_name(mlflow_server, three_runs):
    by_name = _run(runs, ["show", "cmp-mock", "--output", "json"], mlflow_server)
    by_id = _run(runs, ["show", three_runs["cmp-mock"], "--output", "json"], mlflow_server)
    assert by_name.exit_code == 0 and by_id.exit_code == 0
    assert json.loads(by_name.output)["run_id"] == json.loads(by_id.output)["run_id"] == three_runs["cmp-mock"]
    missing = _run(runs, ["show", "no-such-job"], mlflow_server)
    assert isinstance(missing.exception, UsageError)


def test_runs_compare_writes_a_png_with_one_curve_per_run(mlflow_server, three_runs, tmp_path):
    out = tmp_path / "cmp.png"
    refs = [three_runs["cmp-local"], "cmp-mock", three_runs["cmp-maas"]]
    res = _run(runs, ["compare", *refs, "--out", str(out)], mlflow_server)
    assert res.exit_code == 0, res.output
    assert "learning_rate" in res.output

    with Image.open(out) as img:
        img.verify()  # a complete, valid PNG
    with Image.open(out) as img:
        assert img.format == "PNG"
        curves = json.loads(img.text["Description"])["curves"]
        pixels = {px[:3] for px in img.convert("RGB").getdata()}
    # three training curves and the one run with eval loss
    assert sorted((c["kind"], c["run"]) for c in curves) == sorted(
        [("train", rid) for rid in three_runs.values()] + [("eval", three_runs["cmp-local"])]
    )
    # each run got its own colour in the picture (matplotlib's tab10 order), and no fourth colour
    import matplotlib

    tab10 = [tuple(round(255 * c) for c in matplotlib.colormaps["tab10"](i)[:3]) for i in range(4)]
    assert all(color in pixels for color in tab10[:3])
    assert tab10[3] not in pixels

    # logged as an artifact of each compared run
    tracker = Tracker(mlflow_server, EXPERIMENT)
    for rid in three_runs.values():
        assert [f.path for f in tracker.store.client().list_artifacts(rid, "comparisons")] == ["comparisons/cmp.png"]


def test_compare_names_the_metrics_runs_have_when_the_metric_is_missing(mlflow_server, three_runs, tmp_path):
    res = _run(runs, ["compare", "cmp-mock", "--metric", "accuracy", "--out", str(tmp_path / "x.png")], mlflow_server)
    assert isinstance(res.exception, UsageError)
    assert "train_loss" in res.exception.hint
    assert not (tmp_path / "x.png").exists()


def test_results_prints_final_metrics_and_the_model_location(mlflow_server, three_runs):
    res = _run(results, ["cmp-local"], mlflow_server)
    assert res.exit_code == 0, res.output
    assert "train_loss" in res.output and "eval_loss" in res.output
    assert "azureml://jobs/cmp-local/outputs/model" in res.output
    data = json.loads(_run(results, ["cmp-maas", "--output", "json"], mlflow_server).output)
    assert data["status"] == "FINISHED" and data["outputs"] == {"model_output": "azureml://jobs/cmp-maas/outputs/model"}
    assert isinstance(_run(results, ["never-submitted"], mlflow_server).exception, UsageError)


def test_default_local_store_needs_no_server(workdir: Path):
    tracker = Tracker(None, "offline")
    run_id = tracker.start_submission(
        spec={"model": "tiny-phi3", "method": "lora"},
        plan={},
        data_report=None,
        backend="local",
        job_name="offline-1",
        studio_url=None,
        tags={},
    )
    tracker.log_metrics(run_id, {"loss": [(1, 1.0), (2, 0.5)]})
    tracker.log_final(run_id, {"train_loss": 0.5}, "Completed", outputs={"adapter": str(workdir / "out")})
    res = CliRunner().invoke(results, ["offline-1"])
    assert res.exit_code == 0, res.output
    assert str(workdir / "out") in res.output
    listed = CliRunner().invoke(runs, ["list", "--output", "json"])
    assert [r["job_name"] for r in json.loads(listed.output)["runs"]] == ["offline-1"]
    png = CliRunner().invoke(runs, ["compare", "offline-1", "--out", "c.png", "--no-log"])
    assert png.exit_code == 0 and (workdir / "c.png").stat().st_size > 0
    assert "nothing buffered" in CliRunner().invoke(runs, ["flush"]).output


def test_flush_command_reports_a_server_that_is_still_down(workdir: Path):
    # nothing listens on this port: bind and close to get one that is free
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    tracker = Tracker(uri, "down", probe_timeout=0.5)
    tracker.start_submission(
        spec={"model": "m"}, plan={}, data_report=None, backend="mock", job_name="down-1", studio_url=None, tags={}
    )
    res = CliRunner().invoke(runs, ["flush", "--tracking-uri", uri])
    assert "still pending" in res.output
    assert res.exception is not None and res.exception.exit_code == 4


def test_runs_show_and_compare_accept_the_id_prefix_runs_list_prints(mlflow_server, three_runs, tmp_path):
    full = three_runs["cmp-mock"]
    table = _run(runs, ["list", "--experiment", EXPERIMENT], mlflow_server)
    assert full[:12] in table.output
    shown = _run(runs, ["show", full[:12], "--output", "json"], mlflow_server)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["run_id"] == full
    both = _run(
        runs, ["compare", full[:12], three_runs["cmp-local"][:12], "--out", str(tmp_path / "c.png")], mlflow_server
    )
    assert both.exit_code == 0, both.output


def test_run_times_are_iso_utc_to_the_second_and_tables_have_no_python_leftovers(mlflow_server, three_runs):
    import re

    shown = json.loads(_run(runs, ["show", "cmp-local", "--output", "json"], mlflow_server).output)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["start_time"])
    for args in (["list", "--experiment", EXPERIMENT], ["show", "cmp-maas"]):
        out = _run(runs, args, mlflow_server).output
        assert "None" not in out and '{"' not in out and "{'" not in out, out
