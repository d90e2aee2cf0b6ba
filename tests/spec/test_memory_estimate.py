"""The per-GPU memory estimate: counted from the architecture, shown term by term in `azft plan`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from azft.memory import Architecture, ArchitectureError, Setup, estimate, layer_bytes_per_token
from tests.conftest import EXAMPLES, ROOT

TERMS = (
    "weights",
    "gradients",
    "optimizer",
    "activations",
    "final_norm",
    "logits_loss",
    "backward_layer",
    "cuda_context",
    "fragmentation",
)


def plan_json(run_cli, *args):
    r = run_cli("plan", *args, "--output", "json")
    return r, json.loads(r.out)


@pytest.mark.parametrize(
    "model, billions",
    [
        ("phi-3-mini-4k-instruct", 3.82),
        ("phi-3-medium-4k-instruct", 13.96),
        ("phi-3-small-8k-instruct", 7.39),
        ("phi-4", 14.66),
        ("phi-4-mini-instruct", 3.84),
    ],
)
def test_catalog_architectures_give_the_published_parameter_counts(model, billions):
    from azft.catalog import load_catalog

    arch = Architecture.from_config(load_catalog().raw["architectures"][model])
    assert arch.parameters() / 1e9 == pytest.approx(billions, abs=0.01)


def test_every_catalog_model_has_a_sourced_architecture():
    from azft.catalog import load_catalog

    cat = load_catalog()
    for mid in cat.models:
        entry = cat.raw["architectures"][mid]
        assert entry["sources"], mid
        Architecture.from_config(entry, mid)


def test_phi3_mini_lora_8x2048_is_counted_per_saved_tensor(run_cli):
    """The case the old constant got wrong by a factor: every term present, activations from the layer count."""
    r, d = plan_json(run_cli, str(EXAMPLES / "phi3-mini-lora-8x2048.yaml"), "-b", "maap")
    mem = d["estimate"]["memory_per_gpu"]
    assert set(TERMS) <= set(mem["terms"])
    for name, term in mem["terms"].items():
        assert term["formula"] and term["gb"] >= 0, name
    arch = Architecture.from_config(
        {
            "model_type": "phi3",
            "hidden_size": 3072,
            "intermediate_size": 8192,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": 32064,
            "tie_word_embeddings": False,
        }
    )
    per_layer = layer_bytes_per_token(arch, Setup(method="lora", precision="bf16", lora_r=16))
    # bf16 base with fp32 adapters under autocast: norms' fp32 inputs, LoRA masks and casts, q/k/v in the packed
    # attention's per-example layout, attention output and log-sum-exp, gate_up output and SiLU(gate)
    assert per_layer > 30 * 3072
    acts = mem["terms"]["activations"]["gb"]
    assert acts > 3 * 11.2  # the old constant said 11.2 GB
    assert acts == pytest.approx(32 * 16384 * per_layer / 2**30, rel=0.02)
    phase = {
        p: sum(t["gb"] for t in mem["terms"].values() if t["phase"] == p)
        for p in ("persistent", "forward", "backward", "allowance")
    }
    total = phase["persistent"] + max(phase["forward"], phase["backward"]) + phase["allowance"]
    assert mem["total_gb"] == pytest.approx(total, abs=0.2)
    assert mem["peak_phase"] == "forward"  # everything saved for backward plus the loss buffers
    assert "microsoft/Phi-3-mini-4k-instruct" in mem["architecture"]["source"]


def test_table_prints_every_term_with_its_formula(run_cli):
    r = run_cli("plan", str(EXAMPLES / "phi3-medium-qlora.yaml"), "-b", "maap")
    assert r.code == 0, r.err
    text = " ".join(r.out.split())
    assert "memory per GPU" in text and "qlora" in text
    for name in TERMS:
        assert name.replace("_", " ") in text, name
    assert "NF4" in text and "checkpointed" in text


def test_qlora_and_zero3_shrink_what_they_should():
    arch = Architecture("phi3", 5120, 17920, 40, 40, 10, 32064)
    base = Setup(method="full", micro_batch=1, seq_len=2048, world_size=8)
    full = estimate(arch, base)
    z3 = estimate(arch, Setup(**{**base.__dict__, "zero_stage": 3}))
    assert z3.term("weights") < full.term("weights") / 4 and z3.term("optimizer") < full.term("optimizer") / 4
    q = estimate(arch, Setup(method="qlora", micro_batch=1, seq_len=2048))
    lora = estimate(arch, Setup(method="lora", micro_batch=1, seq_len=2048))
    assert q.term("weights") < lora.term("weights") / 2.5
    ckpt = estimate(arch, Setup(method="lora", micro_batch=1, seq_len=2048, gradient_checkpointing=True))
    assert ckpt.term("activations") < lora.term("activations") / 5
    off = estimate(arch, Setup(**{**base.__dict__, "zero_stage": 3, "offload": "all"}))
    assert off.term("weights") == 0 and off.term("optimizer") == 0


def test_local_model_directory_read_from_its_config(run_cli, tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 256,
                "intermediate_size": 688,
                "num_hidden_layers": 4,
                "num_attention_heads": 8,
                "num_key_value_heads": 2,
                "vocab_size": 5000,
                "tie_word_embeddings": True,
            }
        )
    )
    shutil_data(tmp_path)
    spec = write_spec(tmp_path, str(model))
    r, d = plan_json(run_cli, spec, "-b", "local")
    mem = d["estimate"]["memory_per_gpu"]
    assert mem["architecture"]["layers"] == 4 and mem["architecture"]["source"].endswith("config.json")
    (model / "config.json").write_text('{"model_type": "llama"}')
    r, d = plan_json(run_cli, spec, "-b", "local")
    assert "needed for the memory estimate" in d["estimate"]["memory_per_gpu"]["unknown"]


def test_unknown_architecture_is_labelled_not_guessed(run_cli, tmp_path):
    shutil_data(tmp_path)
    r, d = plan_json(
        run_cli,
        write_spec(tmp_path, "someorg/some-model", "compute: {cluster: c1, instance_type: Standard_NC24ads_A100_v4}\n"),
        "-b",
        "maap",
    )
    assert "unknown" in d["estimate"]["memory_per_gpu"]


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"hidden_size": "x"},
        [],
        {
            "hidden_size": 64,
            "intermediate_size": 10,
            "num_hidden_layers": 1,
            "num_attention_heads": 3,
            "num_key_value_heads": 2,
            "vocab_size": 10,
        },
    ],
)
def test_bad_configs_are_refused_clearly(cfg):
    with pytest.raises(ArchitectureError):
        if not isinstance(cfg, dict):
            raise ArchitectureError("not an object")
        Architecture.from_config(cfg, "x/config.json")


def test_estimator_does_not_import_torch():
    probe = textwrap.dedent("""
        import sys, azft.memory, azft.plan
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr[-400:]


# ----------------------------------------------------------------------------------------------------- helpers


def shutil_data(dst: Path) -> None:
    import shutil

    shutil.copytree(EXAMPLES / "data", dst / "data")


def write_spec(dst: Path, model: str, extra: str = "") -> str:
    p = dst / "spec.yaml"
    p.write_text(
        textwrap.dedent(f"""\
        name: t
        model: {model}
        task: chat-completion
        data: {{train: data/chat_train.jsonl}}
        method: lora
        hyperparameters: {{batch_size: 2, max_seq_length: 512}}
        """)
        + extra
    )
    return str(p)


def test_fit_lists_every_catalog_size_with_hours_and_cost(run_cli):
    from azft.catalog import load_catalog

    r, d = plan_json(run_cli, str(EXAMPLES / "phi3-mini-lora-8x2048.yaml"), "-b", "maap", "--fit")
    rows = {row["sku"]: row for row in d["fit"]}
    assert set(rows) == set(load_catalog().skus)
    # ~77 GB (8 × 2048 tokens): the 94 GB H100 and the 80 GB A100 hold it, the 16 GB V100 and T4 do not
    assert rows["Standard_NC40ads_H100_v5"]["fits"] is True and rows["Standard_NC24ads_A100_v4"]["fits"] is True
    assert rows["Standard_NC6s_v3"]["fits"] is False and rows["Standard_NC4as_T4_v3"]["fits"] is False
    for row in rows.values():
        assert row["hours"] > 0 and row["cost_usd"] is not None and row["estimate_gb"] > 0
    fitting = [row["fits"] for row in d["fit"]]
    assert fitting == sorted(fitting, reverse=True)  # sizes that fit come first, cheapest first
    r = run_cli("plan", str(EXAMPLES / "phi3-mini-lora-8x2048.yaml"), "-b", "maap", "--fit")
    assert "GPU sizes" in r.out and "NC6s_v3" in r.out.replace("\n", "")


def test_advice_when_it_does_not_fit(run_cli, tmp_path):
    """On an 80 GB A100 a 10×2048 LoRA case is refused; each suggested change is re-estimated and fits."""
    shutil_data(tmp_path)
    spec = tmp_path / "a100.yaml"
    spec.write_text(
        (EXAMPLES / "phi3-mini-lora-8x2048.yaml")
        .read_text()
        .replace("Standard_NC40ads_H100_v5", "Standard_NC24ads_A100_v4")
        .replace("batch_size: 8", "batch_size: 10")
    )
    r, d = plan_json(run_cli, str(spec), "-b", "maap")
    assert d["verdict"]["ok"] is False
    advice = d["estimate"]["memory_advice"]
    changes = " | ".join(a["change"] for a in advice)
    assert "gradient checkpointing" in changes and "micro-batch 5 × gradient accumulation 2" in changes
    hours = d["estimate"]["hours"]
    for a in advice:
        assert a["estimate_gb"] <= 80 and a["time_factor"] >= 1.0
        assert a["hours"] == pytest.approx((hours - 0.25) * a["time_factor"] + 0.25, abs=0.01)
    assert [a["time_factor"] for a in advice] == sorted(a["time_factor"] for a in advice)
    r = run_cli("plan", str(spec), "-b", "maap")
    assert "changes that make it fit" in r.out
