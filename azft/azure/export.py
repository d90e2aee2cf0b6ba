"""`azft plan --backend maap --export DIR`: the rendered pipeline job as a folder `az ml job create -f DIR/job.yml`
accepts anywhere: each inline component's code and included files copied under DIR, local data files copied next to
them (the CLI uploads local paths itself), every path relative to job.yml, none outside DIR.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azft.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from azft.plan import Plan

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, ignore=_IGNORE, dirs_exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def export_maap(plan: "Plan", out_dir: str | Path) -> Path:
    """Write DIR/job.yml and what it needs; returns the job file."""
    import yaml

    if plan.target != "maap" or plan.request is None:
        raise UsageError("--export writes a maap job: plan with --backend maap (and a plan that can run)")
    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--export {out_dir}: the folder is not empty", hint="name a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    job: dict[str, Any] = copy.deepcopy(plan.request)
    for step, node in (job.get("jobs") or {}).items():
        comp = node.get("component")
        if not isinstance(comp, dict):
            continue  # a registry component (azureml://...) needs nothing local
        if comp.get("code"):
            _copy(Path(comp["code"]), out / "components" / step)
            comp["code"] = f"components/{step}"
        includes = []
        for inc in comp.get("additional_includes") or []:
            src = Path(inc)
            _copy(src, out / "includes" / src.name)
            includes.append(f"includes/{src.name}")
        if includes:
            comp["additional_includes"] = includes
    for d in plan.data:
        if not d.local:
            continue
        key = next(
            (
                k
                for k, v in (job.get("inputs") or {}).items()
                if isinstance(v, dict) and str(v.get("path", "")).endswith(f"/{d.sha256}/{Path(d.path).name}")
            ),
            None,
        )
        if key is None:
            continue
        _copy(Path(d.path), out / "data" / d.role / Path(d.path).name)
        job["inputs"][key]["path"] = f"data/{d.role}/{Path(d.path).name}"
    path = out / "job.yml"
    path.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"
        + yaml.safe_dump(job, sort_keys=False),
        encoding="utf-8",
    )
    return path
