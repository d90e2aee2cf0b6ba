"""Jobs the output tests read: one completed and one failed mock job (the real maas code against the emulator),
submitted once per session into their own azft state directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

FAST = "  seconds_per_state: 0.05\n"


def _spec(folder: Path, name: str, faults: str = "") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nmodel: phi-4-mini-instruct\ntask: chat-completion\n"
        f"data:\n  train: {EXAMPLES / 'data' / 'chat_train.jsonl'}\n"
        "hyperparameters: {epochs: 1, learning_rate: 1.0e-5, batch_size: 4}\n"
        f"output: {{model_name: {name}}}\nmock:\n  target: maas\n{FAST}{faults}"
        f"tracking: {{experiment: {name}}}\n"
    )
    return path


@pytest.fixture(scope="session")
def mock_jobs(tmp_path_factory):
    """{"home": AZFT_HOME, "completed": job, "failed": job, "specs": folder}; tests point AZFT_HOME at home."""
    from azft.cli import main

    home = tmp_path_factory.mktemp("jobs-home")
    specs = tmp_path_factory.mktemp("jobs-specs")
    old = {k: os.environ.get(k) for k in ("AZFT_HOME", "AZFT_CONFIG_DIR")}
    os.environ["AZFT_HOME"], os.environ["AZFT_CONFIG_DIR"] = str(home), str(home / "config")
    names = {}
    try:
        for kind, faults in (
            ("completed", ""),
            ("failed", "  faults:\n    - {kind: job_error, state: Running, error: quota_exceeded}\n"),
        ):
            spec = _spec(specs, f"{kind}-bot", faults)
            code, out, err = _run(
                main, "submit", str(spec), "--backend", "mock", "--wait", "--poll", "0.05", "--output", "json"
            )
            assert out.strip().startswith("{"), f"submit {kind}: exit {code}\n{out}\n{err}"
            names[kind] = json.loads(out)["name"]
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return {"home": home, "specs": specs, **names}


def _run(main, *args: str) -> tuple[object, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def in_jobs_home(mock_jobs, monkeypatch):
    monkeypatch.setenv("AZFT_HOME", str(mock_jobs["home"]))
    monkeypatch.setenv("AZFT_CONFIG_DIR", str(mock_jobs["home"] / "config"))
    return mock_jobs
