"""What fits: every catalog GPU size with the per-GPU memory estimate, hours and cost, and the cheapest changes
that make a configuration fit when it does not (``azft plan --fit``, and the plan's advice).

Pure: the estimator (azft/memory.py), the catalog's SKU table and the plan's token count. Time costs of the changes
are relative step-time factors, stated as assumptions (typical published overheads), not measurements.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from azft.memory import Estimate, Setup, architecture_for, estimate, setup_for

#: Provisioning and image pull before training starts (as the plan's time estimate counts it).
STARTUP_HOURS = 0.25
#: Relative training throughput per GPU against an A100 (the catalog's throughput table is per A100). Assumed,
#: from the GPUs' dense bf16/fp16 tensor throughput.
GPU_SPEED = {"H100": 2.0, "A100": 1.0, "A10": 0.4, "V100": 0.35, "T4": 0.2}
#: Step-time factors of each change. Assumed: recomputing the forward pass costs about a third of a step;
#: dequantising NF4 weights in every matmul about 35%; ZeRO-3 gathers parameters every layer; CPU Adam.
TIME_COST = {
    "gradient_checkpointing": (1.33, "recomputes each layer's forward pass in backward (~+33% step time)"),
    "micro_batch": (1.05, "same tokens per optimizer step in more, smaller micro-batches (~+5% per halving)"),
    "qlora": (1.35, "dequantises the 4-bit weights in every matmul (~+35% step time)"),
    "zero3": (1.15, "gathers each layer's parameters from the other GPUs (~+15% step time)"),
    "offload_optimizer": (1.3, "steps AdamW on the CPU and moves gradients over PCIe (~+30% step time)"),
    "offload_all": (2.5, "also streams the weights from CPU memory every layer (~2.5× step time)"),
}


def gpu_kind(cat: Any, sku: str) -> str:
    gpu = str(cat.skus.get(sku, {}).get("gpu") or sku)
    for kind in GPU_SPEED:  # H100 before A100 before A10
        if kind in gpu:
            return kind
    return "A100"


def _hours(plan: Any, cat: Any, sku: Optional[str], gpus: int, factor: float = 1.0) -> Optional[float]:
    tokens = plan.estimate.get("training_tokens_total") if plan.estimate else None
    if tokens is None:
        return None
    per_gpu = cat.throughput_per_gpu(plan.model.parameters_b) * (0.6 if plan.spec.method == "full" else 1.0)
    per_gpu *= GPU_SPEED[gpu_kind(cat, sku or "")] / factor
    return round(tokens / (per_gpu * gpus) / 3600 + STARTUP_HOURS, 2)


def fit_table(plan: Any, cat: Any, prices: Optional[dict] = None) -> list[dict]:
    """Every catalog GPU size: per-GPU estimate on it, fits or not, estimated hours and cost."""
    arch, why = architecture_for(plan.model, cat)
    skus = {**cat.skus, **((prices or {}).get("skus") or {})}
    rows = []
    for sku, info in skus.items():
        if not info.get("gpus"):
            continue
        row: dict[str, Any] = {
            "sku": sku,
            "gpus": info["gpus"],
            "gpu_memory_gb": info.get("gpu_memory_gb"),
            "nodes": plan.spec.compute.instance_count,
            "allowed": (not plan.model.allowed_skus) or sku in plan.model.allowed_skus,
        }
        if arch is None:
            row.update(estimate_gb=None, fits=None, note=why)
        else:
            setup = setup_for(plan, cat, sku)
            est = estimate(arch, setup)
            row.update(
                estimate_gb=round(est.total_gib, 1),
                world_size=setup.world_size,
                fits=bool(info.get("gpu_memory_gb")) and est.fits(info["gpu_memory_gb"]),
            )
        hours = _hours(plan, cat, sku, row.get("world_size") or info["gpus"] * row["nodes"])
        price = info.get("price_per_hour")
        row.update(hours=hours, cost_usd=round(hours * row["nodes"] * price, 2) if hours and price else None)
        rows.append(row)
    rows.sort(key=lambda r: (not r["fits"], r["cost_usd"] if r["cost_usd"] is not None else float("inf")))
    return rows


def _candidates(s: Setup) -> list[tuple[str, str, str, Setup, float]]:
    """(kind, what, spec change, new setup, time factor) for each single change; micro-batches largest first."""
    out = []
    if not s.gradient_checkpointing:
        out.append(
            (
                "checkpointing",
                "gradient checkpointing",
                "hyperparameters.gradient_checkpointing: true",
                replace(s, gradient_checkpointing=True),
                TIME_COST["gradient_checkpointing"][0],
            )
        )
    mb, acc, halvings = s.micro_batch, s.gradient_accumulation_steps, 0
    while mb > 1:
        mb, acc, halvings = mb // 2, acc * 2, halvings + 1
        out.append(
            (
                "micro",
                f"micro-batch {mb} × gradient accumulation {acc} (same effective batch)",
                f"hyperparameters: {{batch_size: {mb}, gradient_accumulation_steps: {acc}}}",
                replace(s, micro_batch=mb, gradient_accumulation_steps=acc),
                TIME_COST["micro_batch"][0] ** halvings,
            )
        )
    if s.method in ("lora", "dora"):
        out.append(
            ("qlora", "QLoRA (4-bit base weights)", "method: qlora", replace(s, method="qlora"), TIME_COST["qlora"][0])
        )
    if s.world_size > 1 and s.zero_stage < 3:
        out.append(
            (
                "zero3",
                "DeepSpeed ZeRO-3",
                "compute.deepspeed: {stage: 3}",
                replace(s, zero_stage=3, offload="none"),
                TIME_COST["zero3"][0],
            )
        )
    if s.offload == "none":
        stage = max(s.zero_stage, 1)
        out.append(
            (
                "offload",
                "optimizer offload to CPU",
                f"compute.deepspeed: {{stage: {stage}, offload: optimizer}}",
                replace(s, zero_stage=stage, offload="optimizer"),
                TIME_COST["offload_optimizer"][0],
            )
        )
    if s.offload != "all":
        out.append(
            (
                "offload_all",
                "ZeRO-3 with parameter and optimizer offload",
                "compute.deepspeed: {stage: 3, offload: all}",
                replace(s, zero_stage=3, offload="all"),
                TIME_COST["offload_all"][0],
            )
        )
    return out


def advice(
    plan: Any,
    cat: Any,
    est: Estimate,
    gpu_memory_gb: float,
    sku: Optional[str],
    limit: int = 6,
    base_hours: Optional[float] = None,
) -> list[dict]:
    """The cheapest changes that make ``est`` fit ``gpu_memory_gb``: each with its new estimate and time cost.

    Single changes, and gradient checkpointing combined with another when checkpointing alone is not enough; for
    micro-batches only the largest that fits. Sorted by their cost in time.
    """
    tried = _candidates(est.setup)
    ck = replace(est.setup, gradient_checkpointing=True)
    if not est.setup.gradient_checkpointing and not estimate(est.arch, ck).fits(gpu_memory_gb):
        f0 = TIME_COST["gradient_checkpointing"][0]
        tried += [
            (
                f"checkpointing+{k}",
                f"gradient checkpointing + {w}",
                f"hyperparameters.gradient_checkpointing: true; {c}",
                s2,
                f0 * f,
            )
            for k, w, c, s2, f in _candidates(ck)
        ]
    if base_hours is None:
        base_hours = _hours(plan, cat, sku, est.setup.world_size)
    rows: list[dict[str, Any]] = []
    kinds: set[str] = set()
    for kind, what, change, setup, factor in tried:
        if kind in kinds:
            continue
        new = estimate(est.arch, setup)
        if not new.fits(gpu_memory_gb):
            continue
        kinds.add(kind)
        rows.append(
            {
                "change": what,
                "spec": change,
                "estimate_gb": round(new.total_gib, 1),
                "time_factor": round(factor, 2),
                "hours": round((base_hours - STARTUP_HOURS) * factor + STARTUP_HOURS, 2) if base_hours else None,
            }
        )
    rows.sort(key=lambda r: r["time_factor"])
    return rows[:limit]


def smallest_sizes(plan: Any, cat: Any, limit: int = 3) -> list[dict]:
    return [r for r in fit_table(plan, cat) if r["fits"]][:limit]
