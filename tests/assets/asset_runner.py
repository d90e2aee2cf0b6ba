"""Run an Azure ML command component's own command on this machine.

This mirrors what Azure ML does with a component, using the SDK's own code where it has it:
- the code snapshot is built by ``azure-ai-ml`` (``_build_code`` merges ``code:`` with ``additional_includes``)
  and the files copied are the ones the SDK would upload (``get_upload_files_from_folder`` with the snapshot's
  ignore file);
- defaults come from the component's input definitions;
- ``$[[...]]`` blocks are kept only when every input they reference has a value, then ``${{inputs.x}}`` and
  ``${{outputs.x}}`` are replaced by (shell-quoted) values, and the result runs with bash in the snapshot folder.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
_REF = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    command: str
    snapshot: Path


def _render_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"  # how Azure ML renders boolean inputs
    return str(value)


def render_command(command: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> str:
    values = {"inputs": inputs, "outputs": outputs}

    def has_all(block: str) -> bool:
        return all(values[kind].get(name) is not None for kind, name in _REF.findall(block))

    command = _OPTIONAL.sub(lambda m: m.group(1) if has_all(m.group(1)) else "", command)

    def sub(m: re.Match) -> str:
        kind, name = m.group(1), m.group(2)
        if values[kind].get(name) is None:
            raise KeyError(f"{kind}.{name} has no value and is not inside an optional $[[...]] block")
        return shlex.quote(_render_value(values[kind][name]))

    return " ".join(_REF.sub(sub, command).split())


def build_snapshot(component, dest: Path) -> Path:
    from azure.ai.ml._utils._asset_utils import get_upload_files_from_folder

    dest.mkdir(parents=True, exist_ok=True)
    with component._build_code() as code:
        root = Path(code.path)
        for src, rel in get_upload_files_from_folder(root, ignore_file=code._ignore_file):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def run_component(
    yaml_path: Path,
    tmp_path: Path,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> Result:
    from azure.ai.ml import load_component

    component = load_component(source=str(yaml_path))
    unknown = set(inputs) - set(component.inputs)
    assert not unknown, f"inputs not declared by {yaml_path}: {sorted(unknown)}"
    unknown = set(outputs) - set(component.outputs)
    assert not unknown, f"outputs not declared by {yaml_path}: {sorted(unknown)}"
    resolved = {}
    for name, spec in component.inputs.items():
        if name in inputs:
            resolved[name] = inputs[name]
        elif getattr(spec, "default", None) is not None:
            resolved[name] = spec.default
    snapshot = build_snapshot(component, tmp_path / f"snapshot-{component.name}")
    command = render_command(component.command, resolved, outputs)
    run_env = dict(os.environ)
    run_env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + run_env.get("PATH", "")
    # The snapshot must be self-sufficient: nothing from the repository checkout on the import path.
    run_env.pop("PYTHONPATH", None)
    run_env.update(env or {})
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=snapshot,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr, command, snapshot)
