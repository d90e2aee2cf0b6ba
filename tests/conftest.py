"""Shared test setup: every test runs with its own azft state directory and never reaches a model hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_plugins = []
for _mod in ("azure_fixtures", "mlflow_server", "wheel"):
    if (ROOT / "tests" / "fixtures" / f"{_mod}.py").is_file():
        _plugins.append(f"tests.fixtures.{_mod}")
pytest_plugins = _plugins


@pytest.fixture(autouse=True)
def _azft_home(tmp_path_factory, monkeypatch):
    """Keep .azft/ state (jobs, submissions, local MLflow store) out of the repository."""
    home = tmp_path_factory.mktemp("azft-home")
    monkeypatch.setenv("AZFT_HOME", str(home))
    monkeypatch.setenv("AZFT_CONFIG_DIR", str(home / "config"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    yield home


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def run_cli(capsys):
    """Run `azft ...` in-process through the real entry point (exit code, stdout, stderr)."""
    from azft.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    return run


# Under pytest-xdist (scripts/test.sh runs two workers, each taking whole files): the files that train or build
# something go out first, so the run does not end on one worker still training while the other waits; the
# after-training tests (tests/trained/) share one trained job, so they all go to the same worker.
_FIRST = (
    "tests/trained/",
    "tests/train/",
    "tests/backends/test_workspace_resolution.py",
    "tests/backends/test_maap_submit.py",
    "tests/ci/test_action.py",
    "tests/packaging/",
    "tests/assets/",
)


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item) -> int:
        return next((i for i, prefix in enumerate(_FIRST) if item.nodeid.startswith(prefix)), len(_FIRST))

    items.sort(key=rank)  # stable: the order inside each group is kept


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling

    class OneWorkerForTrained(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/trained/" if nodeid.startswith("tests/trained/") else super()._split_scope(nodeid)

    if config.getoption("dist") != "loadfile":
        return None
    config.option.loadscopereorder = False  # keep the order above
    return OneWorkerForTrained(config, log)
