"""One metric vocabulary across backends, MLflow, `azft results` and `azft runs compare`."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from azft.metrics import VOCABULARY, canonical, canonical_name

ROOT = Path(__file__).resolve().parents[2]

# What a local run's MLflow record held before the vocabulary: the recipe's per-step names, its `final_` copies of
# metrics.json, and metrics.json itself copied again by `azft wait`.
OLD_LOCAL_RUN = {
    "loss": 2.1,
    "learning_rate": 4e-4,
    "epoch": 2.0,
    "grad_norm": 1.3,
    "tokens_per_second": 900.0,
    "eval_loss": 2.3,
    "perplexity": 9.97,
    "final_final_loss": 2.1,
    "final_train_loss": 2.6,
    "final_epochs": 2.0,
    "final_global_step": 8.0,
    "final_eval_loss": 2.3,
    "final_perplexity": 9.97,
    "final_loss": 2.1,
    "train_loss": 2.6,
    "epochs": 2.0,
    "global_step": 8.0,
}


def test_old_local_run_names_one_metric_per_meaning():
    names = canonical(OLD_LOCAL_RUN)
    assert names["train_loss"] == 2.1 and names["train_loss_mean"] == 2.6
    assert names["epochs_completed"] == 2.0 and names["steps"] == 8.0
    assert names["scheduled_lr"] == 4e-4 and names["eval_perplexity"] == 9.97
    assert not any(k.startswith("final_") for k in names)
    assert not {"epoch", "epochs", "learning_rate", "loss", "perplexity", "global_step"} & set(names)


@pytest.mark.parametrize(
    "source,raw,expected",
    [
        # the recipe's metrics.json summary
        (
            "recipe",
            {
                "final_loss": 1.0,
                "train_loss": 1.4,
                "epochs": 1.0,
                "global_step": 4,
                "perplexity": 3.0,
                "train_runtime_seconds": 12.0,
            },
            {
                "train_loss": 1.0,
                "train_loss_mean": 1.4,
                "epochs_completed": 1.0,
                "steps": 4,
                "eval_perplexity": 3.0,
                "train_seconds": 12.0,
            },
        ),
        # the emulator's run history
        (
            "emulator",
            {"loss": [(1, 2.0)], "eval_loss": [(10, 2.1)]},
            {"train_loss": [(1, 2.0)], "eval_loss": [(10, 2.1)]},
        ),
        # Azure ML run history: the Hugging Face Trainer's names as Azure's fine-tuning components log them
        (
            "azure-hf",
            {
                "loss": [(5, 1.2)],
                "learning_rate": [(5, 1e-5)],
                "epoch": [(5, 0.5)],
                "train_loss": [(10, 1.5)],
                "train_runtime": [(10, 60.0)],
                "total_flos": [(10, 1e12)],
                "eval_loss": [(10, 1.3)],
            },
            {
                "train_loss": [(5, 1.2)],
                "scheduled_lr": [(5, 1e-5)],
                "epochs_completed": [(5, 0.5)],
                "train_loss_mean": [(10, 1.5)],
                "train_seconds": [(10, 60.0)],
                "model_flops": [(10, 1e12)],
                "eval_loss": [(10, 1.3)],
            },
        ),
        # OpenAI-style fine-tuning checkpoint names
        (
            "azure-openai-style",
            {
                "train_loss": [(1, 1.0)],
                "valid_loss": [(1, 1.1)],
                "full_valid_loss": [(1, 1.2)],
                "train_mean_token_accuracy": [(1, 0.5)],
            },
            {
                "train_loss": [(1, 1.0)],
                "eval_batch_loss": [(1, 1.1)],
                "eval_loss": [(1, 1.2)],
                "train_token_accuracy": [(1, 0.5)],
            },
        ),
    ],
)
def test_every_backend_maps_to_the_vocabulary(source, raw, expected):
    assert canonical(raw) == expected, source


def test_canonical_names_are_stable_and_unknown_names_kept():
    for m in VOCABULARY:
        assert canonical_name(m.name) == m.name
        assert canonical({m.name: 1.0}) == {m.name: 1.0}
    assert canonical({"custom_metric": 1.0}) == {"custom_metric": 1.0}


def test_the_recipe_logs_the_vocabulary_names(monkeypatch):
    """The recipe imports nothing from azft: its own table must give the names azft.metrics gives."""
    monkeypatch.syspath_prepend(str(ROOT / "components" / "finetune" / "src"))
    sys.modules.pop("ft_report", None)
    import ft_report

    summary = {
        "method": "lora",
        "global_step": 4,
        "epochs": 1.0,
        "final_loss": 1.0,
        "train_loss": 1.4,
        "train_runtime_seconds": 3.0,
        "train_tokens": 100,
        "eval_loss": 2.0,
        "perplexity": 7.4,
        "tokens_per_second": 30.0,
        "mfu": 0.01,
    }
    step = {"epoch": 0.5, "loss": 1.1, "learning_rate": 1e-4, "grad_norm": 0.3, "tokens_per_second": 20.0}
    for record in (summary, step):
        numeric = {k: v for k, v in record.items() if isinstance(v, (int, float))}
        assert ft_report.mlflow_names(record) == pytest.approx(canonical(numeric))


def test_docs_table_lists_the_vocabulary():
    text = (ROOT / "docs" / "metrics.md").read_text()
    for m in VOCABULARY:
        assert re.search(rf"^\| `{m.name}` \|", text, re.M), m.name
        for alias in m.aliases:
            assert f"`{alias}`" in text, (m.name, alias)


@pytest.fixture
def old_style_runs(tmp_path, monkeypatch):
    """Two runs as an earlier azft recorded them (the local recipe's names), in a local store."""
    from azft.tracking import Tracker

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    tracker = Tracker(uri, "vocab", buffer_dir=tmp_path / "buffer", quiet=True)
    ids = {}
    for job, lr in (("vocab-a", 2e-4), ("vocab-b", 1e-4)):
        rid = tracker.start_submission(
            spec={"model": "tiny-phi3", "method": "lora", "hyperparameters": {"epochs": 2, "learning_rate": lr}},
            plan={},
            data_report=None,
            backend="local",
            job_name=job,
            studio_url=None,
            tags={},
        )
        tracker.log_metrics(
            rid,
            {
                "loss": [(1, 2.5), (8, 2.1)],
                "learning_rate": [(1, lr), (8, lr / 10)],
                "epoch": [(1, 0.25), (8, 2.0)],
                "eval_loss": [(8, 2.3)],
            },
        )
        final = {
            k: v
            for k, v in OLD_LOCAL_RUN.items()
            if k.startswith("final_") or k in ("final_loss", "train_loss", "epochs", "global_step")
        }
        tracker.log_final(rid, final, "Completed")
        ids[job] = rid
    return uri, ids


def test_results_and_compare_name_each_metric_once(old_style_runs, tmp_path):
    from azft.cli_runs import results, runs

    uri, ids = old_style_runs
    res = CliRunner().invoke(results, ["vocab-a", "--tracking-uri", uri, "--output", "json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output)["metrics"]
    assert {"train_loss", "train_loss_mean", "eval_loss", "epochs_completed", "scheduled_lr", "steps"} <= set(metrics)
    assert not {"final_final_loss", "final_loss", "epoch", "epochs", "final_epochs", "learning_rate"} & set(metrics)
    table = CliRunner().invoke(results, ["vocab-a", "--tracking-uri", uri]).output
    assert "final_final_loss" not in table and "final_epochs" not in table
    cmp = CliRunner().invoke(
        runs, ["compare", "vocab-a", "vocab-b", "--tracking-uri", uri, "--no-log", "--out", str(tmp_path / "c.png")]
    )
    assert cmp.exit_code == 0, cmp.output
    labels = [line.split("│")[1].strip() for line in cmp.output.splitlines() if line.count("│") >= 3]
    assert labels.count("learning_rate") == 1  # the hyperparameter (a param), once
    assert "scheduled_lr" in labels and "epochs" in labels and "epochs_completed" in labels
    assert not {"epoch", "final_epochs", "final_final_loss", "final_loss"} & set(labels)
    assert (tmp_path / "c.png").stat().st_size > 0  # the loss curves still read the older runs' `loss`


@pytest.mark.parametrize("created", ["2026-12-04 15:37:26.150631+00:00", "2026-12-04T15:37:26+00:00"])
def test_job_json_times_are_iso_utc_seconds_on_every_backend(created, run_cli, monkeypatch):
    """Azure's SDK gives `2026-12-04 15:37:26.150631+00:00`, the local backend wrote `...+00:00`: one format out."""
    from azft.backends.base import JobInfo, JobStatus
    from azft.backends.local import _now

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", _now())
    info = JobInfo(name="t-1", backend="mock", status=JobStatus.COMPLETED, created=created)
    assert info.to_dict()["created"] == "2026-12-04T15:37:26Z"
    monkeypatch.setattr("azft.api.list_jobs", lambda *a, **k: [info])
    listed = json.loads(run_cli("list", "--output", "json").out)
    assert listed[0]["created"] == "2026-12-04T15:37:26Z"
