"""The package as a user installs it: `python -m build`, then the wheel in a fresh virtual environment, used from a
directory that is not the checkout.

To keep this fast the new environment does not download azft's dependencies again: it is created without them and a
`.pth` file appends the current environment's site-packages *after* its own (a plain path line, so the editable
install of the checkout living there is not activated). `import azft` and the `azft` command resolve to the wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml

import azft

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _run(args: list[str], *, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict:
    """`python -m build` (sdist, then the wheel built from it), as a release is made."""
    out = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=ROOT)
    (wheel,) = out.glob("azft-*.whl")
    (sdist,) = out.glob("azft-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist, "log": proc.stdout + proc.stderr}


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> dict:
    """A fresh venv outside the repository with the wheel installed; returns the environment to run it with."""
    base = tmp_path_factory.mktemp("wheel-venv")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    py = venv / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=base).stdout.strip())
    here = {Path(p).resolve() for p in (ROOT, ROOT / "tests")}
    layers = [p for p in sys.path if p and Path(p).is_dir() and Path(p).resolve() not in here
              and (p.endswith("site-packages") or p.endswith("dist-packages"))]
    layers = layers or [sysconfig.get_paths()["purelib"]]
    (purelib / "zz_outer_env.pth").write_text("\n".join(layers) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
          str(dist["wheel"])], cwd=base)
    work = base / "project"  # a user's project: a spec and its data, nothing else
    work.mkdir()
    shutil.copytree(EXAMPLES / "data", work / "data")
    for name in ("tiny-local.yaml", "phi3-mini.yaml"):
        shutil.copy(EXAMPLES / name, work / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", AZFT_HOME=str(base / "home"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return {"venv": venv, "py": py, "work": work, "env": env, "purelib": purelib}


def test_sdist_and_wheel_carry_the_azure_ml_assets_and_clean_metadata(dist):
    assert not re.search(r"(?i)deprecat", dist["log"]), dist["log"]
    with tarfile.open(dist["sdist"]) as tar:
        names = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in tar.getnames() if "/" in n}
    for needed in ("components/finetune/component.yml", "components/finetune/src/train.py",
                   "components/validate_data/run.py", "components/environment/runtime.conda.yml",
                   "pipelines/finetune.yml", "setup.py", "LICENSE", "CHANGELOG.md"):
        assert needed in names, needed
    with zipfile.ZipFile(dist["wheel"]) as whl:
        files = set(whl.namelist())
        component = whl.read("azft/components/validate_data/component.yml").decode()
        meta = whl.read(f"azft-{azft.__version__}.dist-info/METADATA").decode()
    repo_assets = [p.relative_to(ROOT).as_posix() for d in ("components", "pipelines") for p in (ROOT / d).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts]
    missing = [p for p in repo_assets if f"azft/{p}" not in files]
    assert not missing, f"not in the wheel: {missing}"
    assert not any("__pycache__" in f for f in files)
    # the include that reached the package from components/validate_data/ reaches it in the installed tree too
    assert re.search(r"^additional_includes:\n  - \.\./\.\.\n", component, re.M), component
    assert f"Version: {azft.__version__}" in meta and "License-Expression: MIT" in meta


def test_installed_wheel_validates_plans_and_trains_outside_the_checkout(installed):
    env, work, py = installed["env"], installed["work"], installed["py"]

    where = _run([str(py), "-c", "import azft, azft.resources as r; print(azft.__file__); print(r.layout()); "
                  "print(r.component_file('finetune'))"], cwd=work, env=env).stdout.split()
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
    res = _run(["azft", "submit", "smoke.yaml", "--backend", "local", "--wait", "--output", "json"],
               cwd=work, env=env, timeout=600)
    done = json.loads(res.stdout)
    assert done["status"] == "Completed", done
    log = next(Path(env["AZFT_HOME"]).glob(".azft/jobs/*/job.log")).read_text()
    assert str(installed["purelib"] / "azft" / "components" / "finetune" / "src" / "train.py") in log or \
        "train.py" in log
    assert not (ROOT / ".azft" / "jobs" / done["name"]).exists()
