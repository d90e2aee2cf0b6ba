"""actionlint (with shellcheck on every `run:` script) on every workflow, on the composite action and on the workflow
docs/ci.md tells other repositories to write.

actionlint reads workflows, not action metadata, so the action's steps are linted as the steps of a job in a
reusable workflow declaring the same inputs (`inputs.*` and `steps.*` resolve as in the action); a workflow that
uses the action by path (`uses: ./`) also has its `with:` checked against the action's inputs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ci.conftest import ACTION, ROOT

DOCS = ROOT / "docs" / "ci.md"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed: it comes with the test extra (pip install -e '.[test]')"
    return found


def _lint(paths: list[Path], cwd: Path = ROOT) -> None:
    proc = subprocess.run(
        [
            _tool("actionlint"),
            "-no-color",
            "-oneline",
            "-shellcheck",
            _tool("shellcheck"),
            "-pyflakes",
            "",
            *map(str, paths),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("workflow", sorted((ROOT / ".github" / "workflows").glob("*.y*ml")), ids=lambda p: p.name)
def test_repository_workflows(workflow):
    _lint([workflow.relative_to(ROOT)])


def test_composite_action_steps(tmp_path):
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    for step in action["runs"]["steps"]:
        assert "uses" in step or step.get("shell") == "bash", f"{step.get('name')}: composite run steps need a shell"
    inputs = {
        name: {"type": "string", "required": False, "default": str(spec.get("default", ""))}
        for name, spec in action["inputs"].items()
    }
    wf = {
        "name": "action",
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    path = tmp_path / ".github" / "workflows" / "action-steps.yml"
    path.write_text(yaml.safe_dump(wf, sort_keys=False))
    _lint([path.relative_to(tmp_path)], cwd=tmp_path)


def test_the_documented_use_from_another_repository(tmp_path):
    """The workflow in docs/ci.md ("Use it from your repository"), verbatim."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    snippet = next(b for b in blocks if "azft@v" in b and "jobs:" in b)
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    path = tmp_path / ".github" / "workflows" / "finetune.yml"
    path.write_text(snippet)
    _lint([path.relative_to(tmp_path)], cwd=tmp_path)
    steps = yaml.safe_load(snippet)["jobs"]["finetune"]["steps"]
    action_step = next(s for s in steps if "azft@v" in str(s.get("uses")))
    assert set(action_step.get("with") or {}) <= set(yaml.safe_load(ACTION.read_text())["inputs"])
