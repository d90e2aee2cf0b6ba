"""``azft export --format onnx``: the merged model as an ONNX graph for ONNX Runtime, checked before it is kept.

The graph is the merged model's forward pass without a KV cache: inputs ``input_ids`` and ``attention_mask``
(int64, ``[batch, sequence]``, both dimensions dynamic), output ``logits`` (float32, ``[batch, sequence, vocab]``).
It is exported with ``torch.onnx.export(..., dynamo=True)`` (torch.export, then onnxscript's translation and graph
optimisation). The folder also holds the model's config, generation config and tokenizer (with its chat template).

Before the command succeeds, one prompt (the first of the job's validation file, else a fixed question) rendered
with the chat template runs through ``onnxruntime`` and through the PyTorch model that was exported; the largest
absolute difference of their logits must be within ``tolerance()``. Measured on a tiny-phi3 LoRA job over its 440
training and validation conversations (fp32, CPU, onnxruntime 1.32): at most 1.2e-6 from the merged PyTorch model
and 1.6e-6 from the unmerged adapter model (which is itself 1.7e-6 from the merged one).

onnx, onnxscript and onnxruntime are the ``onnx`` extra; they, torch and transformers are imported inside functions.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from azft.errors import EXIT_JOB_FAILED, AzftError, UsageError
from azft.trained.job import TrainedModel

PACKAGES = ("onnx", "onnxscript", "onnxruntime")
MODEL_FILE = "model.onnx"
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("logits",)
#: The check's bound on max |logit(onnxruntime) - logit(torch)|: 1e-4, scaled by the logits' own magnitude when it
#: is above 1. Measured on tiny-phi3 (2 layers, fp32, CPU): at most 1.2e-6. For deeper models the scaling is a guess
#: (float32 rounding grows with depth and logit size), not a measurement.
ABS_TOLERANCE = 1e-4
FALLBACK_PROMPT = "Where is my order?"


class ExportCheckError(AzftError):
    """The exported graph's logits differ from the PyTorch model's beyond the tolerance."""

    exit_code = EXIT_JOB_FAILED


def require() -> None:
    """A clear error naming the extra when onnx, onnxscript or onnxruntime is missing (before any model loads)."""
    import importlib.util

    missing = [p for p in PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise UsageError(
            f"--format onnx needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed",
            hint="pip install 'azft[onnx]' (onnx, onnxscript, onnxruntime)",
        )


def tolerance(max_abs_logit: float) -> float:
    return ABS_TOLERANCE * max(1.0, max_abs_logit)


def check_prompt(tm: TrainedModel) -> list[dict]:
    """The conversation the check runs: the first prompt of the job's validation (else training) file."""
    from azft.trained.generate import read_prompts

    for path in (tm.validation_data, tm.train_data):
        if path and Path(path).is_file():
            try:
                return read_prompts(path, tm.task)[0].messages
            except Exception:  # an unreadable file: the fixed question does the check as well
                continue
    return [{"role": "user", "content": FALLBACK_PROMPT}]


def _logits_module(model: Any) -> Any:
    import torch

    class LogitsOnly(torch.nn.Module):
        """The causal LM's forward pass as (input_ids, attention_mask) -> logits, with no cache."""

        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    return LogitsOnly(model).eval()


def _example_batch(ids: list[int], pad: int) -> tuple[Any, Any]:
    """Two rows of different lengths (left padded), so neither dimension is traced as a constant 1."""
    import torch

    short = ids[-max(2, len(ids) // 2) :]
    width = max(len(ids), len(short) + 1)
    input_ids = torch.full((2, width), pad, dtype=torch.long)
    mask = torch.zeros((2, width), dtype=torch.long)
    for r, row in enumerate((ids, short)):
        input_ids[r, width - len(row) :] = torch.tensor(row)
        mask[r, width - len(row) :] = 1
    return input_ids, mask


def write_onnx(module: Any, example: tuple[Any, Any], path: Path) -> int:
    """Export ``module`` to ``path`` (weights inline, or beside it as external data past protobuf's 2 GB);
    returns the opset."""
    import logging
    import warnings

    import torch

    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed", about ops an LM never uses
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            example,
            dynamo=True,
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            verbose=False,
            dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}),
        )
        assert program is not None  # dynamo=True returns the ONNXProgram
        program.save(str(path))
    exporter_log.setLevel(level)
    return int(next(o.version for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx")))


def run_check(path: Path, module: Any, ids: list[int]) -> dict:
    """One prompt through onnxruntime and through ``module``: the largest logit difference, and the bound."""
    import numpy as np
    import onnxruntime as ort
    import torch

    feed = {"input_ids": np.asarray([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), np.int64)}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUTS), feed)[0]
    with torch.inference_mode():
        ref = module(torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"])).float().numpy()
    if got.shape != ref.shape:
        raise ExportCheckError(f"onnxruntime returned logits of shape {list(got.shape)}, PyTorch {list(ref.shape)}")
    diff = float(np.abs(got - ref).max())
    scale = float(np.abs(ref).max())
    return {
        "prompt_tokens": len(ids),
        "max_abs_diff": diff,
        "max_abs_logit": scale,
        "tolerance": tolerance(scale),
        "onnxruntime": ort.__version__,
        "same_greedy_tokens": bool((got.argmax(-1) == ref.argmax(-1)).all()),
    }


def export_onnx(tm: TrainedModel, dest: Path, tokenizer: Any) -> dict:
    """The merged model as ``dest/model.onnx`` with its config and tokenizer, checked against PyTorch."""
    from azft.trained.generate import prompt_ids

    model = tm.load(merged=True)  # an adapter folded in: one plain transformers model to trace
    model.config.use_cache = False
    module = _logits_module(model)
    ids = prompt_ids(tokenizer, check_prompt(tm))[-max(2, tm.max_seq_length) :]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    path = dest / MODEL_FILE
    opset = write_onnx(module, _example_batch(ids, int(pad)), path)
    check = run_check(path, module, ids)
    model.config.use_cache = True
    model.config.save_pretrained(str(dest))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(dest))
    if check["max_abs_diff"] > check["tolerance"]:
        raise ExportCheckError(
            f"{path}: onnxruntime's logits differ from PyTorch's by up to {check['max_abs_diff']:.3g} on a "
            f"{check['prompt_tokens']}-token prompt (tolerance {check['tolerance']:.3g}); the files are left for "
            "inspection",
            hint="use --format merged for an exact copy",
        )
    return {"opset": opset, "inputs": list(INPUTS), "outputs": list(OUTPUTS), "check": check}
