"""The recipe itself: each method trains the right parameters, clear errors, tiny-phi3, the component YAML."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.train.train_helpers import COMPONENT, RECIPE_DIR, load_recipe, recipe_args


def tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def run_in_process(recipe, argv) -> int:
    return recipe.train.main(argv)


def test_lora_trains_only_the_adapter_and_writes_every_output(recipe, data_dir, tiny_model, tmp_path, capsys):
    assert run_in_process(recipe, recipe_args(data_dir, tmp_path, method="lora", max_steps=4)) == 0
    out = capsys.readouterr().out
    assert "step 4/4" in out and "tok/s" in out and "ETA" in out  # the progress line
    model_dir = tmp_path / "model"
    adapter = tensors(model_dir / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)  # only adapter weights are saved: the base is frozen
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapter.items())  # B starts at 0
    assert not (model_dir / "model.safetensors").exists()
    assert (model_dir / "tokenizer.json").exists()
    assert not (model_dir / "checkpoints").exists()  # removed once the run finished
    cfg = json.loads((model_dir / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["use_dora"] is False

    metrics = tmp_path / "metrics"
    rows = [json.loads(x) for x in (metrics / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert all({"epoch", "learning_rate", "tokens_per_second"} <= r.keys() for r in train_rows)
    assert any("eval_loss" in r and "perplexity" in r for r in rows)
    summary = json.loads((metrics / "metrics.json").read_text())
    assert summary["global_step"] == 4 and summary["eval_loss"] > 0 and summary["perplexity"] > 1
    assert summary["final_loss"] < train_rows[0]["loss"]  # it learned something
    assert (metrics / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dora_has_magnitude_vectors(recipe, data_dir, tmp_path):
    assert run_in_process(recipe, recipe_args(data_dir, tmp_path, method="dora", max_steps=2)) == 0
    adapter = tensors(tmp_path / "model" / "adapter_model.safetensors")
    assert any("lora_magnitude_vector" in k for k in adapter)
    assert json.loads((tmp_path / "model" / "adapter_config.json").read_text())["use_dora"] is True


def test_full_fine_tuning_changes_every_weight(recipe, data_dir, tiny_model, tmp_path):
    assert run_in_process(recipe, recipe_args(data_dir, tmp_path, method="full", max_steps=2, learning_rate=1e-3)) == 0
    before = tensors(tiny_model / "model.safetensors")
    after = tensors(tmp_path / "model" / "model.safetensors")
    assert set(after) == set(before)
    unchanged = [k for k in before if (after[k] - before[k]).abs().max() == 0]
    assert unchanged == []  # all parameters were trainable
    summary = json.loads((tmp_path / "metrics" / "metrics.json").read_text())
    assert summary["trainable_parameters"] == summary["total_parameters"]


def test_unpacked_training_works_too(recipe, data_dir, tmp_path):
    assert (
        run_in_process(
            recipe,
            recipe_args(data_dir, tmp_path, packing="false", max_steps=2, validation_data=None, validation_split=0.25),
        )
        == 0
    )
    assert json.loads((tmp_path / "metrics" / "metrics.json").read_text())["eval_loss"] > 0


def _run_cli(argv, env=None):
    return subprocess.run(
        [sys.executable, str(RECIPE_DIR / "train.py"), *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_qlora_on_cpu_fails_clearly(data_dir, tmp_path, azft_cache):
    r = _run_cli(recipe_args(data_dir, tmp_path, method="qlora"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "azft-finetune: error: method qlora" in r.stderr
    assert "CUDA" in r.stderr and "--method lora" in r.stderr


def test_unknown_hub_model_offline_fails_clearly(data_dir, tmp_path, azft_cache):
    # HF_HUB_OFFLINE makes the real from_pretrained(hub_id) path fail at once instead of after network timeouts
    r = _run_cli(
        recipe_args(data_dir, tmp_path, model="microsoft/Phi-3.5-mini-instruct"),
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert "could not load model 'microsoft/Phi-3.5-mini-instruct'" in r.stderr
    assert "local model directory" in r.stderr


def test_bad_data_names_file_line_and_field(tmp_path, data_dir, azft_cache):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    r = _run_cli(recipe_args(data_dir, tmp_path, train_data=str(bad)))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{bad}:1: messages: needs at least one assistant message" in r.stderr


def test_deepspeed_configs_follow_the_spec(recipe):
    z3 = recipe.deepspeed.zero_config(3, "all", cuda=True)
    assert z3["zero_optimization"]["stage"] == 3
    assert z3["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert z3["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    z2 = recipe.deepspeed.zero_config(2, "none", cuda=False)
    assert "offload_optimizer" not in z2["zero_optimization"]
    assert z2["optimizer"]["params"]["torch_adam"] is True
    with pytest.raises(ValueError, match="needs ZeRO stage 3"):
        recipe.deepspeed.zero_config(2, "parameters", cuda=True)


def test_tiny_phi3_builds_deterministically(tmp_path, tiny_model):
    from azft.tiny_phi3 import ensure_tiny_phi3

    again = ensure_tiny_phi3(tmp_path)
    assert again != tiny_model

    def digest(d):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}

    assert digest(again) == digest(tiny_model)
    assert ensure_tiny_phi3(tmp_path) == again  # second call reuses the build
    cfg = json.loads((again / "config.json").read_text())
    assert cfg["model_type"] == "phi3" and cfg["num_hidden_layers"] == 2


def test_component_yaml_is_a_valid_azure_ml_component():
    from azure.ai.ml import load_component

    component = load_component(source=str(COMPONENT))
    assert component._validate().passed
    expected_inputs = {
        "model",
        "model_path",
        "train_data",
        "validation_data",
        "validation_split",
        "task",
        "method",
        "epochs",
        "max_steps",
        "learning_rate",
        "batch_size",
        "gradient_accumulation_steps",
        "max_seq_length",
        "warmup_ratio",
        "lr_scheduler",
        "weight_decay",
        "seed",
        "packing",
        "precision",
        "gradient_checkpointing",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_target_modules",
        "deepspeed_stage",
        "deepspeed_offload",
        "save_steps",
        "logging_steps",
    }
    assert set(component.inputs) == expected_inputs
    assert set(component.outputs) == {"model_output", "metrics"}
    # every input is a recipe option, so the command Azure ML renders is one the recipe accepts
    options = {a.dest for a in load_recipe().train.build_parser()._actions}
    assert expected_inputs | {"model_output", "metrics"} <= options


def test_an_unreachable_tracking_server_never_stops_training(data_dir, tmp_path, azft_cache):
    import socket

    with socket.socket() as s:  # a port nothing listens on: connections are refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _run_cli(
        recipe_args(data_dir, tmp_path, max_steps=2),
        env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("warning: MLflow") == 1  # warned once
    assert json.loads((tmp_path / "metrics" / "metrics.json").read_text())["global_step"] == 2


def test_lora_targets_that_do_not_exist_are_named(recipe, data_dir, tmp_path, capsys):
    assert run_in_process(recipe, recipe_args(data_dir, tmp_path, lora_target_modules="qkv_proj,q_proj")) == 2
    err = capsys.readouterr().err
    assert "no module named q_proj" in err and "qkv_proj" in err and "all-linear" in err


def test_the_task_list_is_the_same_in_the_component_the_recipe_and_the_data_checks(recipe):
    """The component's enum, the recipe's copy (it runs without azft installed) and azft's data checks agree."""
    import yaml

    from azft.data.tasks import TASKS

    component = yaml.safe_load(COMPONENT.read_text())
    assert tuple(component["inputs"]["task"]["enum"]) == TASKS
    assert recipe.data.TASKS == TASKS
    task_option = next(a for a in recipe.train.build_parser()._actions if a.dest == "task")
    assert tuple(task_option.choices) == TASKS


def test_warmup_ratio_is_a_fraction_of_the_optimizer_steps(recipe, data_dir, tmp_path, capsys):
    """--warmup_ratio 0.5 over 4 steps: 2 warmup steps, then linear decay — the same on every transformers version."""
    lr = 4e-3
    assert (
        run_in_process(
            recipe,
            recipe_args(data_dir, tmp_path, max_steps=4, learning_rate=lr, warmup_ratio=0.5, validation_data=None),
        )
        == 0
    )
    rows = [json.loads(x) for x in (tmp_path / "metrics" / "metrics.jsonl").read_text().splitlines()]
    rates = [r["learning_rate"] for r in rows if "loss" in r]
    assert rates == pytest.approx([0.0, lr / 2, lr, lr / 2])  # the rate each step used
