"""`azft plan --backend maap --export DIR`: a folder `az ml job create -f DIR/job.yml` accepts from anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import EXAMPLES

CHECK = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from azure.ai.ml import load_job
    job = load_job(sys.argv[1])
    out = {"inputs": {k: str(getattr(v._data, "path", v._data)) for k, v in job.inputs.items()}}
    for name, node in job.jobs.items():
        c = node.component
        if isinstance(c, str):
            continue
        includes = c._generate_additional_includes_obj()
        with includes.merge_local_code_and_additional_includes() as snapshot:
            files = sorted(str(p.relative_to(snapshot)) for p in Path(snapshot).rglob("*") if p.is_file())
        out[name] = {"code": str(c.code), "valid": includes.validate().passed, "files": files}
    print(json.dumps(out))
""")


def test_exported_maap_job_loads_and_resolves_from_another_directory(run_cli, tmp_path):
    out = tmp_path / "export"
    r = run_cli("plan", str(EXAMPLES / "phi3-mini.yaml"), "-b", "maap", "--export", str(out), "--output", "json")
    assert r.code == 0, r.out + r.err
    text = (out / "job.yml").read_text()
    assert str(EXAMPLES.parent) not in text and "/work/" not in text and "../" not in text
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-c", CHECK, str(out / "job.yml")],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = json.loads(res.stdout.splitlines()[-1])
    for name in ("validate_data", "finetune", "evaluate", "register_model"):
        c = loaded[name]
        code = Path(c["code"]) if Path(c["code"]).is_absolute() else out / c["code"]
        assert c["valid"] and code.resolve().is_relative_to(out.resolve()) and code.is_dir(), (name, c)
    assert "train.py" in loaded["finetune"]["files"]
    assert "run.py" in loaded["validate_data"]["files"] and "azft/data/check.py" in loaded["validate_data"]["files"]
    assert loaded["inputs"]["train_data"].endswith("data/train/chat_train.jsonl")
    assert (out / "data" / "train" / "chat_train.jsonl").is_file()
