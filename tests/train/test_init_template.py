"""The spec `azft init` writes learns visibly on tiny-phi3 in a first run: its settings, through the real plan, drive
the recipe for a short run and the loss drops clearly; the catalog's tiny-phi3 defaults (learning rate 2e-3, r=8,
two modules) barely move it. A real catalog model gets the catalog's defaults, said so in a comment."""

from __future__ import annotations

import json

from tests.conftest import EXAMPLES
from tests.train.train_helpers import recipe_args

STEPS = 30  # two short runs of a few seconds each: slow-ish, and the one proof the template learns


def _losses(recipe, data_dir, out, inputs: dict) -> list[float]:
    keep = (
        "learning_rate",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_target_modules",
        "warmup_ratio",
        "batch_size",
        "method",
    )
    argv = recipe_args(
        data_dir,
        out,
        max_steps=STEPS,
        max_seq_length=128,
        validation_data=None,
        train_data=str(EXAMPLES / "data" / "chat_train.jsonl"),
        logging_steps=1,
        **{k: inputs[k] for k in keep},
    )
    assert recipe.train.main(argv) == 0
    rows = [json.loads(x) for x in (out / "metrics" / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_the_init_template_visibly_learns_on_tiny_phi3(run_cli, recipe, data_dir, tmp_path, monkeypatch):
    from azft import api

    monkeypatch.chdir(tmp_path)
    res = run_cli("init", "azft.yaml", "--train", str(EXAMPLES / "data" / "chat_train.jsonl"))
    assert res.code == 0, res.text
    inputs = api.plan("azft.yaml", "local").component_inputs
    assert inputs["learning_rate"] == 5e-3 and inputs["lora_r"] == 16  # the quickstart's settings, not the catalog's
    template = _losses(recipe, data_dir, tmp_path / "template", inputs)
    start, end = template[0], sum(template[-3:]) / 3
    assert end < start - 1.0, template  # a drop a first-time user sees in the progress lines

    catalog = dict(inputs, learning_rate=2e-3, lora_r=8, lora_alpha=16, lora_target_modules="qkv_proj,o_proj")
    slow = _losses(recipe, data_dir, tmp_path / "catalog", catalog)
    assert start - end > 2 * (slow[0] - sum(slow[-3:]) / 3), (template, slow)


def test_init_on_a_catalog_model_states_the_catalogs_defaults(run_cli, tmp_path, monkeypatch):
    from azft.catalog import get_model

    monkeypatch.chdir(tmp_path)
    res = run_cli("init", "phi4.yaml", "--model", "phi-4", "--output", "json")
    assert res.code == 0 and json.loads(res.out)["hyperparameters_from"] == "catalog"
    text = (tmp_path / "phi4.yaml").read_text()
    defaults = get_model("phi-4").defaults
    assert "the catalog's defaults for phi-4" in text and f"learning_rate {defaults['learning_rate']}" in text
    assert "\nhyperparameters:" not in text  # unset, so the plan takes them from the catalog
    assert run_cli("validate", "phi4.yaml", "--no-data").code == 0
