"""azft export merged|adapter on the local job trained for a few steps: loadable with no azft, same logits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

# the merged folder is read by a fresh interpreter that never imports azft (plain transformers), which prints the
# logits of one prompt; the test compares them with the adapter model azft loads
LOAD_PLAIN = textwrap.dedent("""
    import json, sys, torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(sys.argv[1])
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
    text = tok.apply_chat_template([{"role": "user", "content": "Where is my order?"}], tokenize=False,
                                   add_generation_prompt=True) if tok.chat_template else "Where is my order?"
    ids = tok("Where is my order?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].tolist()
    print(json.dumps({"ids": ids[0].tolist(), "logits": logits, "azft": "azft" in sys.modules,
                      "peft": "peft" in sys.modules, "template": text}))
""")


def test_export_merged_equals_adapter_and_loads_without_azft(at_home, run_cli, tmp_path):
    import torch

    from azft.trained.job import TrainedModel

    _, name = at_home
    out = tmp_path / "merged"
    r = run_cli("export", name, "--format", "merged", "--out", str(out), "--output", "json")
    assert r.code == 0, r.text
    files = set(json.loads(r.out)["files"])
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files

    env = {k: v for k, v in os.environ.items() if not k.startswith("AZFT")}
    proc = subprocess.run([sys.executable, "-c", LOAD_PLAIN, str(out)], capture_output=True, text=True,
                          env={**env, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain = json.loads(proc.stdout.splitlines()[-1])
    assert not plain["azft"] and not plain["peft"]
    assert "<|user|>" in plain["template"] and plain["template"].rstrip().endswith("<|assistant|>")

    tm = TrainedModel.from_job(name)
    adapter_model = tm.load()  # PeftModel: base + LoRA, not merged
    with torch.no_grad():
        ref = adapter_model(input_ids=torch.tensor([plain["ids"]])).logits[0]
    assert (ref - torch.tensor(plain["logits"])).abs().max().item() < 1e-4

    # a non-empty --out is refused without --force, and nothing in it is touched
    r = run_cli("export", name, "--format", "adapter", "--out", str(out))
    assert r.code == 2 and "not empty" in r.err and "--force" in r.err
    assert (out / "model.safetensors").is_file()
    r = run_cli("export", name, "--format", "adapter", "--out", str(out), "--force")
    assert r.code == 0, r.text
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert os.path.isdir(cfg["base_model_name_or_path"])  # the bundled base, a folder peft can load
