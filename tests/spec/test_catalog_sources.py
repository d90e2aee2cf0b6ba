"""The catalog is built from Azure's registry specs and every fact names its source; cluster sizes by what fits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES, ROOT

from azft.catalog_registry import FACTS

CATALOG = ROOT / "azft" / "catalog.yaml"


def _catalog() -> dict:
    return yaml.safe_load(CATALOG.read_text())


def _value(entry: dict, fact: str):
    node = entry
    for part in fact.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def test_every_model_fact_carries_a_source():
    cat = _catalog()
    documents = cat["sources"]
    for mid, entry in cat["models"].items():
        prov = entry.get("provenance") or {}
        for fact in FACTS:
            p = prov.get(fact)
            assert p, f"{mid}: {fact} has no provenance"
            if "not_published" in p:
                assert _value(entry, fact) in (None, [], {}), f"{mid}: {fact} is unpublished but has a value"
                assert p["not_published"].strip()
                continue
            src = p.get("source", "")
            assert src in documents or src.startswith("Azure/azureml-assets@") or src.startswith("registry "), (
                f"{mid}: {fact} cites an unknown source {src!r}"
            )
            if src.startswith("Azure/azureml-assets@"):
                assert p.get("field") and p.get("committed") and p.get("read"), (mid, fact, p)


def test_registry_facts_for_phi4_and_phi35():
    """Regenerated from the registry: the Phi-4 compute list and defaults, Phi-3.5's serverless history."""
    models = _catalog()["models"]
    phi4 = models["phi-4"]
    assert phi4["maap"]["allowed_skus"] == [
        "Standard_NC24ads_A100_v4",
        "Standard_NC48ads_A100_v4",
        "Standard_NC96ads_A100_v4",
        "Standard_ND96asr_v4",
        "Standard_ND96amsr_A100_v4",
        "Standard_NC40ads_H100_v5",
        "Standard_NC80adis_H100_v5",
        "Standard_ND96isr_H100_v5",
    ]
    assert phi4["maap"]["min_spec"]["raw"] == "24|1|220|64"
    assert phi4["defaults"]["apply_lora"] is True and phi4["defaults"]["batch_size"] == 1
    assert phi4["defaults"]["gradient_accumulation_steps"] == 1
    assert phi4["provenance"]["maap.allowed_skus"]["field"].endswith("finetuneComputes")
    p35 = models["phi-3.5-mini-instruct"]
    assert p35["maas"]["status"] == "retired"
    assert (p35["maas"]["deprecation_date"], p35["maas"]["retirement_date"]) == ("2025-06-30", "2025-08-30")
    assert set(p35["maas"]["regions"]) == {"eastus2", "eastus", "southcentralus", "northcentralus", "westus", "westus3"}
    assert p35["maas"]["replacement"] == "phi-4-mini-instruct"
    assert "Standard_ND96asr_v4" not in p35["maap"]["allowed_skus"]
    assert p35["defaults"]["learning_rate"] == 2e-5 and p35["defaults"]["learning_rate_bounds"] == [2e-6, 2e-4]
    assert p35["defaults"]["max_seq_length"] == 16384
    assert "865d32e09d6a" in p35["provenance"]["maas.status"]["history"]
    mini4 = models["phi-4-mini-instruct"]
    assert mini4["maap"]["allowed_skus"] == [] and "not_published" in mini4["provenance"]["maap.allowed_skus"]
    assert "denied_skus" not in _catalog() and "K80" not in CATALOG.read_text()


def test_catalog_command_shows_sources(run_cli):
    r = run_cli("catalog", "--model", "phi-3.5-mini-instruct", "--output", "json")
    assert r.code == 0
    facts = {f["fact"]: f for f in json.loads(r.out)["facts"]}
    assert "Azure/azureml-assets@" in facts["maap.allowed_skus"]["where"]
    assert "finetuneComputes" in facts["maap.allowed_skus"]["where"]
    assert "retired-models" not in facts["maas.status"]["where"]
    r = run_cli("catalog", "-m", "phi-4-mini-instruct")
    assert r.code == 0 and "not published" in r.out
    r = run_cli("catalog", "--sizes", "--output", "json")
    skus = json.loads(r.out)["skus"]
    assert skus["Standard_NC40ads_H100_v5"]["gpu_memory_gb"] == 94 and skus["Standard_NC6s_v3"]["source"]


# ----------------------------------------------------------------------------------------------------------------
# The generator, on a small git repository shaped like Azure/azureml-assets
# ----------------------------------------------------------------------------------------------------------------

OLD_SPEC = """\
name: Phi-3.5-mini-instruct
version: 3
properties:
  finetune-min-sku-spec: 24|1|220|64
tags:
  textContextWindow: 131072
  maas-finetuning: true
  maas-finetuning-regions: eastus2,westus3
  finetune_compute_allow_list: [Standard_NC24ads_A100_v4, Standard_NC96ads_A100_v4]
  model_specific_defaults:
    learning_rate: 2e-5
    learning_rate_min: 2e-6
    learning_rate_max: 2e-4
    per_device_train_batch_size: 1
    apply_lora: "true"
"""
NEW_SPEC = """\
name: Phi-3.5-mini-instruct
version: 6
isArchived: true
tags:
  model_specific_defaults: {learning_rate: 2e-5, per_device_train_batch_size: 1, max_seq_length: 16384}
system_metadata:
  textContextWindow: 131072
  SKU: {finetuneMinSkuSpec: 24|1|220|64}
  supportedComputes: {finetuneComputes: [Standard_NC24ads_A100_v4, Standard_NC48ads_A100_v4]}
  deprecation: {finetuneDeprecationDate: '2025-06-30T00:00:00.000000Z',
                finetuneRetirementDate: '2025-08-30T00:00:00.000000Z'}
"""


def _git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_AUTHOR_DATE": "2025-01-01T00:00:00",
        "GIT_COMMITTER_DATE": "2025-01-01T00:00:00",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    repo = tmp_path / "azureml-assets"
    spec = repo / "assets/models/system/phi-3.5-mini-128k-instruct/spec.yaml"
    spec.parent.mkdir(parents=True)
    _git(repo, "init", "-q")
    for text in (OLD_SPEC, NEW_SPEC):
        spec.write_text(text)
        (spec.parent / "description.md").write_text("Phi-3.5-mini is a 3.8B parameter model.\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "spec")
    return repo


def test_generator_reads_both_spec_shapes_and_history(assets: Path, tmp_path: Path):
    out = tmp_path / "catalog.yaml"
    shutil.copy(CATALOG, out)
    text = out.read_text().replace(
        "\nmethods:", "\n# a section the generator does not own\nother_facts:\n  phi-4: {layers: 40}\n\nmethods:", 1
    )
    out.write_text(text.replace("  phi-3.5-mini-instruct:\n", "  phi-3.5-mini-instruct:\n    hidden_size: 3072\n", 1))
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "scripts")!r})
        import build_catalog as b
        b.MODELS = {{"phi-3.5-mini-instruct": b.MODELS["phi-3.5-mini-instruct"]}}
        b.build(__import__("pathlib").Path({str(assets)!r}), "HEAD", __import__("pathlib").Path({str(out)!r}),
                "2026-12-04")
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path)
    doc = yaml.safe_load(out.read_text())
    e = doc["models"]["phi-3.5-mini-instruct"]
    assert e["maas"]["status"] == "retired" and e["maas"]["regions"] == ["eastus2", "westus3"]
    assert e["maas"]["retirement_date"] == "2025-08-30"
    assert e["maap"]["allowed_skus"] == ["Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4"]
    assert e["registry_version"] == 6 and e["archived"] is True and e["parameters_b"] == 3.8
    assert e["defaults"]["max_seq_length"] == 16384
    assert e["provenance"]["maas.regions"]["field"] == "tags.maas-finetuning-regions"
    assert e["provenance"]["maap.allowed_skus"]["read"] == "2026-12-04"
    # what the generator does not own is kept: another section, and extra keys inside a model
    assert doc["other_facts"] == {"phi-4": {"layers": 40}} and e["hidden_size"] == 3072
    assert "# a section the generator does not own\nother_facts:\n  phi-4: {layers: 40}\n" in out.read_text()
    # every section it does not own is kept line for line
    before = CATALOG.read_text()
    arch = before[before.index("\narchitectures:") :]
    assert arch.split("\nsources:")[0] in out.read_text()


# ----------------------------------------------------------------------------------------------------------------
# Cluster sizes by what fits
# ----------------------------------------------------------------------------------------------------------------


def _spec(tmp_path: Path, model: str, method: str, compute: str, hp: str = "epochs: 1") -> str:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data", dirs_exist_ok=True)
    p = tmp_path / f"{model}-{method}.yaml"
    p.write_text(
        textwrap.dedent(f"""\
        name: fit
        model: {model}
        task: chat-completion
        data: {{train: data/chat_train.jsonl}}
        method: {method}
        hyperparameters: {{{hp}}}
        compute: {compute}
        """)
    )
    return str(p)


def _plan(run_cli, path):
    r = run_cli("plan", path, "-b", "maap", "--output", "json")
    return r, json.loads(r.out)


def test_phi4_on_nc24ads_a100_can_run(run_cli, tmp_path):
    r, d = _plan(run_cli, _spec(tmp_path, "phi-4", "lora", "{cluster: gpu, instance_type: Standard_NC24ads_A100_v4}"))
    assert r.code == 0 and d["verdict"]["ok"], d["verdict"]


def test_phi3_mini_on_h100_with_azft_component_can_run(run_cli, tmp_path):
    r, d = _plan(
        run_cli,
        _spec(tmp_path, "phi-3-mini-4k-instruct", "lora", "{cluster: gpu, instance_type: Standard_NC40ads_H100_v5}"),
    )
    assert r.code == 0 and d["verdict"]["ok"], d["verdict"]
    assert any("compute list" in w and "registry pipeline" in w for w in d["verdict"]["warnings"])


def test_qlora_phi3_medium_on_16gb_refused_with_estimate_and_sizes_that_fit(run_cli, tmp_path):
    r, d = _plan(
        run_cli,
        _spec(
            tmp_path,
            "phi-3-medium-4k-instruct",
            "qlora",
            "{cluster: gpu, instance_type: Standard_NC6s_v3}",
            hp="epochs: 1, batch_size: 1, max_seq_length: 2048",
        ),
    )
    assert r.code == 2
    reason = " ".join(d["verdict"]["reasons"])
    assert "estimated" in reason and "GB per GPU" in reason and "Standard_NC6s_v3: 16 GB per GPU" in reason
    fits = next(a for a in d["verdict"]["alternatives"] if a.startswith("compute.instance_type:"))
    assert "Standard_NC6s_v3" not in fits and "est." in fits


def test_registry_pipeline_keeps_the_compute_list(run_cli, tmp_path):
    r, d = _plan(
        run_cli,
        _spec(
            tmp_path,
            "phi-3-mini-4k-instruct",
            "lora",
            "{cluster: gpu, instance_type: Standard_NC40ads_H100_v5, pipeline: registry, deepspeed: {stage: 2}}",
        ),
    )
    assert r.code == 2 and "compute list" in d["verdict"]["reasons"][0]
    assert any("compute.pipeline: azft" in a for a in d["verdict"]["alternatives"])


# ----------------------------------------------------------------------------------------------------------------
# azft catalog refresh: the live registry (emulated: discovery, version list, version GET over HTTPS)
# ----------------------------------------------------------------------------------------------------------------


def test_catalog_refresh_reads_the_live_registry_into_the_overlay(emulator, run_cli, monkeypatch, _azft_home):
    from azft.catalog import _load
    from azft.emulator.routes.registry import add_registry_model

    for key, value in emulator.env().items():
        monkeypatch.setenv(key, value)
    # what the live registry carries for Phi-4: the tag/property shape validate_assets.py backfills
    add_registry_model(
        emulator,
        "Phi-4",
        8,
        created="2026-07-01T00:00:00Z",
        tags={
            "textContextWindow": "16384",
            "finetune_compute_allow_list": "Standard_NC24ads_A100_v4, Standard_NC40ads_H100_v5",
            "model_specific_defaults": '{"learning_rate": "5e-6", "per_device_train_batch_size": "1"}',
        },
        properties={"finetune-min-sku-spec": "24|1|220|64"},
    )
    add_registry_model(
        emulator,
        "Phi-4",
        9,
        created="2026-11-01T00:00:00Z",
        tags={
            "textContextWindow": "16384",
            "finetune_compute_allow_list": "Standard_NC24ads_A100_v4, Standard_NC48ads_A100_v4",
            "model_specific_defaults": '{"learning_rate": "5e-6", "per_device_train_batch_size": "2"}',
        },
        properties={"finetune-min-sku-spec": "24|1|220|64"},
    )
    r = run_cli("catalog", "refresh", "-m", "phi-4", "-m", "phi-3-mini-4k-instruct", "--output", "json")
    assert r.code == 0, r.out + r.err
    result = json.loads(r.out)
    assert result["updated"] == {"phi-4": "9"} and "phi-3-mini-4k-instruct" in result["missing"]
    overlay = yaml.safe_load(Path(result["overlay"]).read_text())
    assert Path(result["overlay"]).parent == _azft_home / "config"
    _load.cache_clear()
    try:
        r = run_cli("catalog", "--model", "phi-4", "--output", "json")
        facts = {f["fact"]: f for f in json.loads(r.out)["facts"]}
        assert facts["registry_version"]["value"] == 9
        assert facts["maap.allowed_skus"]["value"] == ["Standard_NC24ads_A100_v4", "Standard_NC48ads_A100_v4"]
        assert "registry azureml: Phi-4 version 9" in facts["maap.allowed_skus"]["where"]
        assert facts["defaults"]["value"]["batch_size"] == 2
        # facts the live version does not carry keep the shipped catalog's source
        assert "regions-2025" in facts["maas.status"]["source"]["source"]
    finally:
        _load.cache_clear()
    assert overlay["models"]["phi-4"]["provenance"]["registry_version"]["read"]
    seen = [rec.route for rec in emulator.requests if rec.route and rec.route.startswith("registry.")]
    assert {"registry.discovery", "registry.models.list", "registry.models.get"} <= set(seen)
