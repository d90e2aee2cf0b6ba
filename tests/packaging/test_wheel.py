"""The package as a user installs it: `python -m build`, then the wheel in a fresh virtual environment, used from a
directory that is not the checkout.

The new environment reuses the current one's dependencies without azft (tests/fixtures/wheel.py): `import azft` and
the `azft` command resolve to the wheel.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml

import azft
from tests.fixtures.wheel import fresh_env
from tests.fixtures.wheel import run as _run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def dist(azft_dist) -> dict:
    return azft_dist


@pytest.fixture(scope="module")
def installed(azft_dist, tmp_path_factory) -> dict:
    """A fresh venv outside the repository with the wheel installed, and a user's project: a spec and its data."""
    base = tmp_path_factory.mktemp("wheel-venv")
    fresh = fresh_env(base)
    _run([fresh["py"], "-m", "pip", "install", "--no-deps", "-q", azft_dist["wheel"]], cwd=base, env=fresh["env"])
    work = base / "project"
    work.mkdir()
    shutil.copytree(EXAMPLES / "data", work / "data")
    for name in ("tiny-local.yaml", "phi3-mini.yaml"):
        shutil.copy(EXAMPLES / name, work / name)
    return {**fresh, "work": work}


def test_sdist_and_wheel_carry_the_azure_ml_assets_and_clean_metadata(dist):
    assert not re.search(r"(?i)deprecat", dist["log"]), dist["log"]
    with tarfile.open(dist["sdist"]) as tar:
        names = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in tar.getnames() if "/" in n}
    for needed in (
        "components/finetune/component.yml",
        "components/finetune/src/train.py",
        "components/validate_data/run.py",
        "components/environment/runtime.conda.yml",
        "pipelines/finetune.yml",
        "setup.py",
        "LICENSE",
        "CHANGELOG.md",
    ):
        assert needed in names, needed
    with zipfile.ZipFile(dist["wheel"]) as whl:
        files = set(whl.namelist())
        component = whl.read("azft/components/validate_data/component.yml").decode()
        meta = whl.read(f"azft-{azft.__version__}.dist-info/METADATA").decode()
    repo_assets = [
        p.relative_to(ROOT).as_posix()
        for d in ("components", "pipelines")
        for p in (ROOT / d).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    missing = [p for p in repo_assets if f"azft/{p}" not in files]
    assert not missing, f"not in the wheel: {missing}"
    assert not any("__pycache__" in f for f in files)
    # the include that reached the package from components/validate_data/ reaches it in the installed tree too
    assert re.search(r"^additional_includes:\n  - \.\./\.\.\n", component, re.M), component
    assert f"Version: {azft.__version__}" in meta and "License-Expression: MIT" in meta


def test_installed_wheel_validates_plans_and_trains_outside_the_checkout(installed):
    env, work, py = installed["env"], installed["work"], installed["py"]

    where = _run(
        [
            str(py),
            "-c",
            "import azft, azft.resources as r; print(azft.__file__); print(r.layout()); "
            "print(r.component_file('finetune'))",
        ],
        cwd=work,
        env=env,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(installed["purelib"]) and where[1] == "installed", where
    assert Path(where[2]).is_relative_to(installed["purelib"])

    version = _run(["azft", "--version"], cwd=work, env=env).stdout.strip()
    assert version == f"azft {azft.__version__}"

    res = _run(["azft", "validate", "tiny-local.yaml", "--output", "json"], cwd=work, env=env)
    assert json.loads(res.stdout)["ok"] is True

    job_yml = work / "job.yml"
    res = _run(["azft", "plan", "phi3-mini.yaml", "-b", "maap", "--output", "yaml"], cwd=work, env=env)
    job_yml.write_text(res.stdout)
    check = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from azure.ai.ml import load_job
        job = load_job(sys.argv[1])
        out = {}
        for name, node in job.jobs.items():
            c = node.component
            includes = c._generate_additional_includes_obj()
            out[name] = {"code": str(c.code), "includes": list(c.additional_includes or []),
                         "valid": includes.validate().passed}
            with includes.merge_local_code_and_additional_includes() as snapshot:
                out[name]["snapshot"] = sorted(p.name for p in Path(snapshot).iterdir())
        print(json.dumps(out))
    """)
    loaded = json.loads(_run([str(py), "-c", check, str(job_yml)], cwd=work, env=env).stdout.splitlines()[-1])
    assert set(loaded) == {"validate_data", "finetune", "evaluate", "register_model"}
    for name, c in loaded.items():
        assert Path(c["code"]).is_dir() and Path(c["code"]).is_relative_to(installed["purelib"]), (name, c)
        assert c["valid"], (name, c)
    assert loaded["validate_data"]["includes"] == [str(installed["purelib"] / "azft")]
    assert {"run.py", "azft"} <= set(loaded["validate_data"]["snapshot"])
    assert "train.py" in loaded["finetune"]["snapshot"]

    spec = yaml.safe_load((work / "tiny-local.yaml").read_text())
    spec["name"] = "wheel-smoke"
    spec["hyperparameters"].update(epochs=1, max_steps=3, save_steps=100)
    (work / "smoke.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    res = _run(
        ["azft", "submit", "smoke.yaml", "--backend", "local", "--wait", "--output", "json"],
        cwd=work,
        env=env,
        timeout=600,
    )
    done = json.loads(res.stdout)
    assert done["status"] == "Completed", done
    log = next(Path(env["AZFT_HOME"]).glob(".azft/jobs/*/job.log")).read_text()
    assert (
        str(installed["purelib"] / "azft" / "components" / "finetune" / "src" / "train.py") in log or "train.py" in log
    )
    assert not (ROOT / ".azft" / "jobs" / done["name"]).exists()
