"""`azft plan` verdicts from the catalog's rules, estimates, and `azft catalog`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    return tmp_path


def spec_with(
    workdir: Path,
    model: str,
    extra: str = "",
    method: str = "lora",
    name: str = "spec.yaml",
    hp: str = "epochs: 2, batch_size: 4",
) -> str:
    text = textwrap.dedent(f"""\
        name: t
        model: {model}
        task: chat-completion
        data:
          train: data/chat_train.jsonl
          validation: data/chat_val.jsonl
        method: {method}
        hyperparameters: {{{hp}}}
        """) + textwrap.dedent(extra)
    p = workdir / name
    p.write_text(text)
    return str(p)


def plan_json(run_cli, *args):
    r = run_cli("plan", *args, "--output", "json")
    return r, json.loads(r.out)


def test_phi3_on_maas_refused_with_retirement_date_and_alternatives(run_cli):
    r, d = plan_json(run_cli, str(EXAMPLES / "phi3-mini.yaml"), "-b", "maas")
    assert r.code == 2
    reason = " ".join(d["verdict"]["reasons"])
    assert "retired" in reason and "2025-08-30" in reason
    alts = " ".join(d["verdict"]["alternatives"])
    assert "maap" in alts and "phi-4-mini-instruct" in alts and "phi-4" in alts


@pytest.mark.parametrize(
    "model", ["phi-3-mini-128k-instruct", "phi-3-medium-4k-instruct", "phi-3-medium-128k-instruct"]
)
def test_every_phi3_retired_on_maas(run_cli, workdir, model):
    r, d = plan_json(run_cli, spec_with(workdir, model), "-b", "maas")
    assert r.code == 2
    assert "2025-08-30" in d["verdict"]["reasons"][0]
    assert any("maap" in a for a in d["verdict"]["alternatives"])


@pytest.mark.parametrize("model", ["phi-3-small-8k-instruct", "phi-3-small-128k-instruct"])
def test_phi3_small_never_had_serverless(run_cli, workdir, model):
    r, d = plan_json(run_cli, spec_with(workdir, model), "-b", "maas")
    assert r.code == 2
    assert "never had serverless" in d["verdict"]["reasons"][0]
    assert any("maap" in a for a in d["verdict"]["alternatives"])


def test_table_output_says_it_plainly(run_cli):
    r = run_cli("plan", str(EXAMPLES / "phi3-mini.yaml"), "-b", "maas")
    assert r.code == 2
    assert "retired by Azure on 2025-08-30" in r.out
    assert "what works instead" in r.out


def test_override_for_a_workspace_that_still_allows_it(run_cli, workdir):
    r, d = plan_json(
        run_cli, spec_with(workdir, "phi-3-mini-4k-instruct", "maas: {allow_unavailable: true}\n"), "-b", "maas"
    )
    assert d["verdict"]["ok"] is True
    assert any("retired" in w and "allow_unavailable" in w for w in d["verdict"]["warnings"])


def test_region_checked_for_maas(run_cli, workdir):
    r, d = plan_json(run_cli, spec_with(workdir, "phi-4-mini-instruct", "azure: {region: westeurope}\n"), "-b", "maas")
    assert r.code == 2
    assert "westeurope" in d["verdict"]["reasons"][0] and "eastus2" in d["verdict"]["reasons"][0]


@pytest.mark.parametrize("method", ["qlora", "dora", "full"])
def test_maas_offers_only_lora(run_cli, workdir, method):
    r, d = plan_json(run_cli, spec_with(workdir, "phi-4-mini-instruct", method=method), "-b", "maas")
    assert r.code == 2
    assert any(method in x for x in d["verdict"]["reasons"])
    assert any("maap" in a for a in d["verdict"]["alternatives"])


def test_maas_warns_about_ignored_settings(run_cli, workdir):
    r, d = plan_json(
        run_cli,
        spec_with(workdir, "phi-4-mini-instruct", "lora: {r: 64}\ncompute: {deepspeed: {stage: 2}}\n"),
        "-b",
        "maas",
    )
    warn = " ".join(d["verdict"]["warnings"])
    assert "lora.r" in warn and "compute.deepspeed" in warn


def test_maap_requires_cluster_and_checks_sku(run_cli, workdir):
    r, d = plan_json(run_cli, spec_with(workdir, "phi-3-mini-4k-instruct"), "-b", "maap")
    assert r.code == 2 and "compute.cluster" in d["verdict"]["reasons"][0]
    # the registry's compute list binds Azure's registry pipeline
    r, d = plan_json(
        run_cli,
        spec_with(
            workdir,
            "phi-3-medium-4k-instruct",
            "compute: {cluster: gpu, instance_type: "
            "Standard_NC24ads_A100_v4, pipeline: registry, deepspeed: {stage: 3}}\n",
            method="full",
        ),
        "-b",
        "maap",
    )
    assert r.code == 2
    assert "compute list" in d["verdict"]["reasons"][0]
    assert "Standard_NC96ads_A100_v4" in " ".join(d["verdict"]["alternatives"])
    # a size azft has no table entry for is planned with a warning, not refused on a guess
    r, d = plan_json(
        run_cli,
        spec_with(workdir, "phi-3-mini-4k-instruct", "compute: {cluster: gpu, instance_type: Standard_NC6}\n"),
        "-b",
        "maap",
    )
    assert r.code == 0 and any("not in azft's GPU size table" in w for w in d["verdict"]["warnings"])


@pytest.mark.parametrize(
    "method,stage,ok",
    [("qlora", 0, False), ("dora", 0, False), ("lora", 1, False), ("lora", 2, True), ("full", 3, True)],
)
def test_registry_pipeline_rules(run_cli, workdir, method, stage, ok):
    extra = f"compute: {{cluster: gpu, instance_type: Standard_NC24ads_A100_v4, pipeline: registry, deepspeed: {{stage: {stage}}}}}\n"
    r, d = plan_json(run_cli, spec_with(workdir, "phi-3-mini-4k-instruct", extra, method=method), "-b", "maap")
    assert d["verdict"]["ok"] is ok, d["verdict"]


def test_qlora_on_cpu_machine_refused_locally(run_cli, workdir):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU")
    r, d = plan_json(run_cli, spec_with(workdir, "tiny-phi3", method="qlora"), "-b", "local")
    assert r.code == 2
    assert "CUDA" in d["verdict"]["reasons"][0]
    assert any("maap" in a for a in d["verdict"]["alternatives"])


def test_tiny_phi3_is_local_only(run_cli, workdir):
    r, d = plan_json(run_cli, spec_with(workdir, "tiny-phi3", "compute: {cluster: gpu}\n"), "-b", "maap")
    assert r.code == 2 and "only on this machine" in d["verdict"]["reasons"][0]


def test_max_seq_length_over_context(run_cli, workdir):
    r, d = plan_json(
        run_cli,
        spec_with(workdir, "phi-3-mini-4k-instruct", "compute: {cluster: gpu}\n", hp="epochs: 2, max_seq_length: 8192"),
        "-b",
        "maap",
    )
    assert r.code == 2 and "4096" in d["verdict"]["reasons"][0]


def test_maap_estimate_from_price_table(run_cli, workdir):
    r, d = plan_json(run_cli, str(EXAMPLES / "phi3-mini.yaml"), "-b", "maap")
    e = d["estimate"]
    assert e["label"] == "ESTIMATE"
    assert e["instance_type"] == "Standard_NC24ads_A100_v4" and e["gpus"] == 1
    assert e["cost_usd"] and e["hours"] > 0
    prices = workdir / "prices.yaml"
    prices.write_text("skus:\n  Standard_NC24ads_A100_v4: {price_per_hour: 100.0}\n")
    r2, d2 = plan_json(run_cli, str(EXAMPLES / "phi3-mini.yaml"), "-b", "maap", "--prices", str(prices))
    assert d2["estimate"]["cost_usd"] > e["cost_usd"]
    assert d2["estimate"]["price_source"] == str(prices)


def test_maas_cost_needs_a_price_and_says_so(run_cli):
    r, d = plan_json(run_cli, str(EXAMPLES / "phi4-mini-maas.yaml"), "-b", "maas")
    assert d["estimate"]["cost_usd"] is None and "--prices" in d["estimate"]["cost_note"]
    r, d = plan_json(
        run_cli, str(EXAMPLES / "phi4-mini-maas.yaml"), "-b", "maas", "--prices", str(EXAMPLES / "prices.yaml")
    )
    e = d["estimate"]
    assert e["cost_usd"] == pytest.approx(e["training_tokens_total"] / 1000 * 0.003, abs=0.01)


def test_job_name_is_deterministic_and_changes_with_data(run_cli, workdir):
    spec = spec_with(workdir, "tiny-phi3")
    _, a = plan_json(run_cli, spec, "-b", "local")
    _, b = plan_json(run_cli, spec, "-b", "local")
    assert a["job_name"] == b["job_name"]
    with open(workdir / "data" / "chat_train.jsonl", "a") as f:
        f.write('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}\n')
    _, c = plan_json(run_cli, spec, "-b", "local")
    assert c["job_name"] != a["job_name"]


def test_catalog_lists_models_and_truth(run_cli):
    r = run_cli("catalog", "--output", "json")
    assert r.code == 0
    models = json.loads(r.out)["models"]
    for mid in (
        "phi-3-mini-4k-instruct",
        "phi-3-mini-128k-instruct",
        "phi-3-medium-4k-instruct",
        "phi-3-medium-128k-instruct",
        "phi-3-small-8k-instruct",
        "phi-3-small-128k-instruct",
        "phi-3.5-mini-instruct",
        "phi-4",
        "phi-4-mini-instruct",
        "tiny-phi3",
    ):
        assert mid in models
    assert models["phi-3-mini-4k-instruct"]["maas"]["retirement_date"] == "2025-08-30"
    assert models["phi-3-small-8k-instruct"]["maas"]["status"] == "never"
    assert "eastus2" in models["phi-4-mini-instruct"]["maas"]["regions"]
    assert "Standard_NC24ads_A100_v4" in models["phi-3-mini-4k-instruct"]["allowed_skus"]
    table = run_cli("catalog")
    assert "retired" in table.out and "2025-08-30" in table.out


def test_catalog_yaml_cites_sources():
    text = (ROOT / "azft" / "catalog.yaml").read_text()
    for src in ("registry-spec", "regions-2024", "regions-2025", "acft-pipeline"):
        assert src in text


def test_fast_commands_do_not_import_heavy_libraries(tmp_path):
    """`azft --help`, `validate`, `catalog` and `schema` never import azure.ai.ml, mlflow, torch or transformers."""
    probe = textwrap.dedent("""
        import sys
        from azft.cli import main
        try:
            main(sys.argv[1:])
        except SystemExit:
            pass
        heavy = [m for m in ("azure.ai.ml", "mlflow", "torch", "transformers") if m in sys.modules]
        print("HEAVY=" + ",".join(heavy), file=sys.stderr)
    """)
    for args in (
        ["--help"],
        ["validate", str(EXAMPLES / "tiny-local.yaml")],
        ["catalog"],
        ["schema"],
        ["data", "check", str(EXAMPLES / "data" / "chat_val.jsonl"), "--task", "chat-completion"],
    ):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=tmp_path)
        assert "HEAVY=\n" in out.stderr or out.stderr.rstrip().endswith("HEAVY="), (args, out.stderr[-500:])


def test_user_catalog_overlay(run_cli, workdir, _azft_home):
    """A user whose Azure facts differ overlays ~/.azft/catalog.yaml; azft plans with it."""
    from azft.catalog import _load

    cfg = _azft_home / "config"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "catalog.yaml").write_text("models:\n  phi-4-mini-instruct:\n    maas: {regions: [westeurope]}\n")
    _load.cache_clear()
    r, d = plan_json(run_cli, spec_with(workdir, "phi-4-mini-instruct", "azure: {region: westeurope}\n"), "-b", "maas")
    assert d["verdict"]["ok"] is True, d["verdict"]
    _load.cache_clear()
