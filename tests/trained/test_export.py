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
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_PLAIN, str(out)],
        capture_output=True,
        text=True,
        env={**env, "HF_HUB_OFFLINE": "1"},
        cwd=tmp_path,
        timeout=300,
    )
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


# the ONNX graph is run by a fresh interpreter with onnxruntime, numpy and tokenizers only (no torch, no azft), on
# the same rendered prompt as the PyTorch model; batched with padding too
RUN_ORT = textwrap.dedent("""
    import json, sys
    import numpy as np, onnxruntime as ort
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
    s = ort.InferenceSession(sys.argv[1] + "/model.onnx", providers=["CPUExecutionProvider"])
    ids = json.loads(sys.argv[2])
    one = s.run(["logits"], {"input_ids": np.array([ids], np.int64),
                             "attention_mask": np.ones((1, len(ids)), np.int64)})[0]
    short = ids[:5]
    batch = np.array([ids, short + [0] * (len(ids) - 5)], np.int64)
    mask = np.array([[1] * len(ids), [1] * 5 + [0] * (len(ids) - 5)], np.int64)
    two = s.run(["logits"], {"input_ids": batch, "attention_mask": mask})[0]
    print(json.dumps({"one": one[0].tolist(), "short": two[1, :5].tolist(), "torch": "torch" in sys.modules,
                      "inputs": [(i.name, i.shape) for i in s.get_inputs()],
                      "text": tok.decode(ids, skip_special_tokens=False)}))
""")


def test_export_onnx_runs_in_onnxruntime_with_the_adapter_models_logits(at_home, run_cli, tmp_path):
    """Measured on this job (tiny-phi3, 24 LoRA steps) over its 440 training and validation conversations:
    onnxruntime's logits are within 1.6e-6 of the PyTorch adapter model's (fp32, CPU); the test holds them to 1e-5."""
    import torch

    from azft.trained.generate import prompt_ids
    from azft.trained.job import TrainedModel

    _, name = at_home
    out = tmp_path / "onnx"
    r = run_cli("export", name, "--format", "onnx", "--out", str(out), "--output", "json")
    assert r.code == 0, r.text
    res = json.loads(r.out)  # stdout is the JSON alone: the exporter's progress stays off it
    assert {"model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json"} <= set(res["files"])
    check = res["onnx"]["check"]
    assert res["onnx"]["inputs"] == ["input_ids", "attention_mask"] and res["onnx"]["outputs"] == ["logits"]
    assert check["max_abs_diff"] < 1e-5 and check["tolerance"] >= 1e-4 and check["same_greedy_tokens"]

    tm = TrainedModel.from_job(name)
    tok = tm.tokenizer()
    ids = prompt_ids(tok, [{"role": "user", "content": "Where is my order? It has not arrived yet."}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZFT")}
    proc = subprocess.run(
        [sys.executable, "-c", RUN_ORT, str(out), json.dumps(ids)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ort_out = json.loads(proc.stdout.splitlines()[-1])
    assert not ort_out["torch"] and ort_out["text"].startswith("<|user|>")
    assert [n for n, _ in ort_out["inputs"]] == ["input_ids", "attention_mask"]

    adapter_model = tm.load()  # PeftModel: base + LoRA, not merged: the model as trained
    with torch.no_grad():
        ref = adapter_model(input_ids=torch.tensor([ids])).logits[0]
        ref_short = adapter_model(input_ids=torch.tensor([ids[:5]])).logits[0]
    assert (ref - torch.tensor(ort_out["one"])).abs().max().item() < 1e-5
    assert (ref_short - torch.tensor(ort_out["short"])).abs().max().item() < 1e-5  # right-padded row in a batch

    # a non-empty --out is refused before anything is exported
    r = run_cli("export", name, "--format", "onnx", "--out", str(out))
    assert r.code == 2 and "not empty" in r.err


def test_export_onnx_without_the_extra_names_it(at_home, run_cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a))
    out = tmp_path / "never"
    r = run_cli("export", at_home[1], "--format", "onnx", "--out", str(out))
    assert r.code == 2 and "onnxruntime" in r.err and "azft[onnx]" in r.err and "Traceback" not in r.text
    assert not out.exists()  # refused before the folder was made
