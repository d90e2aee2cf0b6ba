"""Every spec value reaches Azure's registry pipeline, is translated with a note, or is named as not sent."""

from __future__ import annotations

import json
import math
import shutil
import textwrap
from pathlib import Path


from tests.conftest import EXAMPLES

#: spec hyperparameter → the registry pipeline input carrying it (None: translated or not sent, said in the plan)
CARRIED = {
    "epochs": "num_train_epochs",
    "learning_rate": "learning_rate",
    "batch_size": "per_device_train_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_seq_length": "max_seq_length",
    "lr_scheduler": "lr_scheduler_type",
    "weight_decay": "weight_decay",
    "seed": "seed",
    "max_steps": "max_steps",
    "logging_steps": "logging_steps",
    "precision": "precision",
    "warmup_ratio": "warmup_steps",
    "gradient_checkpointing": None,
    "packing": None,
    "save_steps": None,
}
VALUES = {
    "epochs": 3,
    "learning_rate": 3.0e-5,
    "batch_size": 2,
    "gradient_accumulation_steps": 2,
    "max_seq_length": 1024,
    "lr_scheduler": "linear",
    "weight_decay": 0.01,
    "seed": 7,
    "max_steps": 50,
    "logging_steps": 5,
    "precision": "bf16",
    "warmup_ratio": 0.1,
    "gradient_checkpointing": True,
    "packing": False,
    "save_steps": 20,
}


def _plan(
    run_cli, tmp_path: Path, hp: str, data: str = "{train: data/chat_train.jsonl, validation: data/chat_val.jsonl}"
) -> tuple[int, dict]:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data", dirs_exist_ok=True)
    p = tmp_path / "spec.yaml"
    p.write_text(
        textwrap.dedent(f"""\
        name: reg
        model: phi-3-mini-4k-instruct
        task: chat-completion
        data: {data}
        method: lora
        hyperparameters: {{{hp}}}
        compute: {{cluster: gpu, instance_type: Standard_NC24ads_A100_v4, pipeline: registry, deepspeed: {{stage: 2}}}}
        """)
    )
    r = run_cli("plan", str(p), "-b", "maap", "--output", "json")
    return r.code, json.loads(r.out)


def test_every_hyperparameter_reaches_the_registry_pipeline_or_is_named(run_cli, tmp_path):
    from azft.spec import JobSpec

    fields = set(JobSpec.model_fields["hyperparameters"].annotation.model_fields)
    assert fields == set(CARRIED), "a new spec field needs a registry-pipeline mapping here and in azft"
    for field, value in VALUES.items():
        hp = f"{field}: {json.dumps(value)}"
        code, d = _plan(run_cli, tmp_path, hp)
        assert code == 0, (field, d["verdict"])
        said = " ".join(d["notes"] + d["verdict"]["warnings"])
        target = CARRIED[field]
        if target is None:
            assert f"hyperparameters.{field}" in said, field
            continue
        bound = d["request"]["inputs"][target]
        if field == "precision":
            assert bound == "16" and "precision bf16 → '16'" in said
        elif field == "warmup_ratio":
            assert "warmup_ratio 0.1 → warmup_steps" in said and bound > 0
        else:
            assert str(bound) == str(value), (field, bound)


def test_warmup_steps_from_the_planned_step_count(run_cli, tmp_path):
    code, d = _plan(run_cli, tmp_path, "epochs: 2, batch_size: 4, gradient_accumulation_steps: 2, warmup_ratio: 0.25")
    rows = next(x for x in d["data"] if x["role"] == "train")
    assert code == 0 and d["request"]["inputs"]["pad_to_max_length"] == "true"
    steps = int(d["notes"][[i for i, n in enumerate(d["notes"]) if "warmup_steps" in n][0]].split("of ")[1].split()[0])
    assert d["request"]["inputs"]["warmup_steps"] == math.ceil(steps * 0.25) and steps > 0, rows


def test_validation_split_is_refused_with_alternatives(run_cli, tmp_path):
    code, d = _plan(run_cli, tmp_path, "epochs: 1", data="{train: data/chat_train.jsonl, validation_split: 0.1}")
    assert code == 2
    assert any("split fraction" in r for r in d["verdict"]["reasons"])
    alts = " ".join(d["verdict"]["alternatives"])
    assert "azft data split" in alts and "compute.pipeline: azft" in alts
