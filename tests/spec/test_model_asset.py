"""The model the plan names is the model that trains: a pinned registry model version, in the plan and the job name."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import yaml

from tests.conftest import EXAMPLES, ROOT


def _spec(tmp_path: Path, model: str, extra: str = "") -> str:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data", dirs_exist_ok=True)
    p = tmp_path / "spec.yaml"
    p.write_text(
        textwrap.dedent(f"""\
        name: pin
        model: {model}
        task: chat-completion
        data: {{train: data/chat_train.jsonl}}
        method: lora
        hyperparameters: {{epochs: 1, gradient_checkpointing: true}}
        """)
        + extra
    )
    return str(p)


CLUSTER = "compute: {cluster: gpu, instance_type: Standard_NC24ads_A100_v4}\n"


def _plan(run_cli, path: str, backend: str) -> dict:
    r = run_cli("plan", path, "-b", backend, "--output", "json")
    assert r.code == 0, r.out
    return json.loads(r.out)


def test_maap_binds_the_pinned_registry_model(run_cli, tmp_path):
    d = _plan(run_cli, _spec(tmp_path, "phi-3-mini-4k-instruct", CLUSTER), "maap")
    pinned = "azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/15"
    assert d["model"]["asset"] == pinned
    inputs = d["request"]["inputs"]
    assert inputs["model_path"] == {"type": "mlflow_model", "path": pinned}
    for step in ("finetune", "evaluate"):
        assert d["request"]["jobs"][step]["inputs"]["model_path"]["path"] == "${{parent.inputs.model_path}}"
    table = run_cli("plan", _spec(tmp_path, "phi-3-mini-4k-instruct", CLUSTER), "-b", "maap")
    assert pinned in table.out


def test_the_pinned_version_is_part_of_the_job_name(run_cli, tmp_path, _azft_home):
    from azft.catalog import _load

    path = _spec(tmp_path, "phi-3-mini-4k-instruct", CLUSTER)
    before = _plan(run_cli, path, "maap")["job_name"]
    cfg = _azft_home / "config"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "catalog.yaml").write_text("models:\n  phi-3-mini-4k-instruct:\n    registry_version: 16\n")
    _load.cache_clear()
    try:
        after = _plan(run_cli, path, "maap")
    finally:
        (cfg / "catalog.yaml").unlink()
        _load.cache_clear()
    assert after["model"]["asset"].endswith("/versions/16") and after["job_name"] != before


def test_a_hub_id_in_the_spec_trains_that_hub_id(run_cli, tmp_path):
    d = _plan(run_cli, _spec(tmp_path, "microsoft/Phi-3-mini-4k-instruct", CLUSTER), "maap")
    assert d["model"]["asset"] is None
    assert "model_path" not in d["request"]["inputs"]
    assert "model_path" not in d["request"]["jobs"]["finetune"]["inputs"]
    assert d["request"]["inputs"]["model"] == "microsoft/Phi-3-mini-4k-instruct"


def test_maas_sends_a_pinned_version_when_the_registry_publishes_one(run_cli, tmp_path):
    d = _plan(run_cli, _spec(tmp_path, "phi-4", "azure: {region: eastus2}\n"), "maas")
    assert d["request"]["model"]["path"] == "azureml://registries/azureml/models/Phi-4/versions/8"
    d = _plan(run_cli, _spec(tmp_path, "phi-4-mini-instruct"), "maas")
    assert d["request"]["model"]["path"].endswith("/labels/latest")
    assert any("cannot pin" in n for n in d["notes"])


def test_shipped_images_are_pinned():
    for path in [*ROOT.glob("components/*/component.yml")]:
        env = (yaml.safe_load(path.read_text()) or {}).get("environment") or {}
        image = env.get("image") if isinstance(env, dict) else None
        if image:
            assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), (path, image)
    for path in ROOT.glob("pipelines/*.yml"):
        assert "/labels/latest" not in path.read_text(), path
