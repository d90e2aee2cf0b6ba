"""DeepSpeed ZeRO configuration generated from the recipe's arguments.

Values the Hugging Face Trainer knows (batch sizes, learning rate, precision, clipping) are left as ``"auto"``
so the Trainer fills them in and the two can never disagree.
"""

from __future__ import annotations

OFFLOADS = ("none", "optimizer", "parameters", "all")


def zero_config(stage: int, offload: str = "none", *, cuda: bool) -> dict:
    """A DeepSpeed config for ZeRO ``stage`` (1, 2 or 3) with optional CPU offload.

    ``offload``: ``optimizer`` moves optimizer states to CPU memory (stages 1-3), ``parameters`` moves the
    parameters too (stage 3 only), ``all`` both. Without CUDA everything already lives in CPU memory, so offload
    is a no-op and is left out; the optimizer is torch's AdamW (``torch_adam``) so no compiled op is needed.
    """
    if stage not in (1, 2, 3):
        raise ValueError(f"deepspeed_stage must be 1, 2 or 3 for ZeRO (0 turns DeepSpeed off), not {stage}")
    if offload not in OFFLOADS:
        raise ValueError(f"deepspeed_offload must be one of {', '.join(OFFLOADS)}, not {offload!r}")
    if offload in ("parameters", "all") and stage != 3:
        raise ValueError(
            f"deepspeed_offload={offload} offloads parameters, which needs ZeRO stage 3 (got stage {stage}); "
            "use deepspeed_offload=optimizer, or deepspeed_stage=3"
        )
    zero: dict = {
        "stage": stage,
        "contiguous_gradients": True,
        "overlap_comm": cuda,
        "reduce_bucket_size": "auto",
    }
    if stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": "auto",
                "stage3_param_persistence_threshold": "auto",
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
    if cuda and offload in ("optimizer", "all"):
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if cuda and offload in ("parameters", "all"):
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    config: dict = {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto", "torch_adam": True},
        },
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1_000_000,
        "wall_clock_breakdown": False,
    }
    if cuda and "offload_optimizer" in zero:
        # ZeRO-Offload steps the optimizer on the CPU: DeepSpeed's CPU Adam is the fast path there.
        config["optimizer"]["params"].pop("torch_adam")
    return config
