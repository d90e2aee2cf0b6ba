"""Fixtures for the CI tests: the workflow files, their shell steps, and the `azft ci` helpers run in-process."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.wheel import fresh_env

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "finetune.yml"
ACTION = ROOT / "action.yml"
PIPELINE = ROOT / "examples" / "ci" / "azure-pipelines.yml"
MOCK_SPEC = ROOT / "examples" / "mock-ci.yaml"
BIN = Path(sys.executable).parent


def load_yaml(path: Path) -> dict:
    """PyYAML, as CI services read these files (note: YAML 1.1 reads a bare `on:` key as True)."""
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    assert isinstance(doc, dict), f"{path}: not a mapping"
    return doc


def github_on(doc: dict) -> dict:
    return doc.get("on", doc.get(True))


def github_run_steps(doc: dict) -> list[tuple[str, dict]]:
    """(job id, step) for every `run:` step of a GitHub workflow."""
    return [(job_id, step) for job_id, job in doc["jobs"].items() for step in job.get("steps", []) if "run" in step]


def pipeline_scripts(doc: dict) -> list[tuple[str, str]]:
    """(step name, shell script) for every script of an Azure Pipelines file, AzureCLI@2 inline scripts included."""
    out = []
    for stage in doc.get("stages", []):
        for job in stage.get("jobs", []):
            for step in job.get("steps", []):
                name = step.get("displayName") or step.get("name") or "?"
                for key in ("script", "bash"):
                    if key in step:
                        out.append((name, step[key]))
                if str(step.get("task", "")).startswith("AzureCLI@"):
                    out.append((name, step["inputs"]["inlineScript"]))
    return out


def azft_commands(script: str) -> list[list[str]]:
    """Every `azft ...` invocation in a shell script, as argument lists (continuations joined, pipes split)."""
    text = re.sub(r"\\\n\s*", " ", script)
    commands = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\s#.*$", "", line)
        for part in re.split(r"\|\||&&|;|\||\$\(|\)", line):
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            while words and words[0] in ("exec", "then", "do", "else", "!"):
                words = words[1:]
            if words and words[0] == "azft":
                stop = next((i for i, w in enumerate(words) if w in (">", ">>", "2>", "2>&1")), len(words))
                commands.append(words[1:stop])
    return commands


@pytest.fixture
def run_ci(run_cli):
    """`azft ci ...` in-process through the real entry point."""
    return lambda *args: run_cli("ci", *args)


@pytest.fixture
def clean_ci_env(monkeypatch):
    """No CI variables from the machine running the tests leak into the helpers."""
    for var in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def shell_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture
def runner_env(tmp_path, azft_dist) -> dict:
    """A machine with Python and a package index holding azft, but no azft installed."""
    index = tmp_path / "index"
    index.mkdir()
    shutil.copy(azft_dist["wheel"], index)
    fresh = fresh_env(tmp_path / "machine")
    env = dict(fresh["env"])
    env.pop("AZFT_HOME", None)
    env.update(
        PIP_FIND_LINKS=str(index),
        GITHUB_REPOSITORY="acme/bots",
        GITHUB_SERVER_URL="https://github.example",
        GITHUB_RUN_ID="42",
    )
    return env
