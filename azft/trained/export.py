"""``azft export``: the fine-tuned model as a folder plain ``transformers`` (or ``peft``) loads with no azft.

``merged``: LoRA/DoRA folded into the base weights (safetensors, config, tokenizer with the chat template).
``adapter``: the adapter alone (adapter_config.json + adapter_model.safetensors) with the tokenizer.
``onnx``: the merged model as an ONNX graph for ONNX Runtime, checked against PyTorch (``onnx_export``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from azft.errors import UsageError
from azft.trained.job import TrainedModel

FORMATS = ("merged", "adapter", "onnx")


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UsageError(f"{out} exists and is not empty", hint="choose another --out or pass --force")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def export(tm: TrainedModel, fmt: str, out: str, *, force: bool = False) -> dict:
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}")
    dest = Path(out)
    if fmt == "adapter" and not tm.is_adapter:
        raise UsageError(
            f"job {tm.job!r} trained all weights ({tm.method}); there is no adapter to export",
            hint="use --format merged (a full model folder)",
        )
    if fmt == "onnx":
        from azft.trained import onnx_export

        onnx_export.require()  # the extra, before anything is loaded or written
    _check_out(dest, force)
    tokenizer = tm.tokenizer()
    extra: dict = {}
    if fmt == "onnx":
        from azft.trained.onnx_export import export_onnx

        extra["onnx"] = export_onnx(tm, dest, tokenizer)
    elif fmt == "merged":
        model = tm.load(merged=True)
        model.config.use_cache = True
        model.save_pretrained(str(dest), safe_serialization=True)
    else:
        for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
            if (tm.model_dir / name).is_file():
                shutil.copy2(tm.model_dir / name, dest / name)
        cfg = json.loads((dest / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = tm.base_source() if tm.base == "tiny-phi3" else tm.base
        (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    tokenizer.save_pretrained(str(dest))
    files = sorted(p.name for p in dest.iterdir())
    return {"format": fmt, "out": str(dest), "files": files, "base_model": tm.base, "method": tm.method, **extra}
