"""The model side of the recipe: where the weights come from, the tokenizer, the precision, and the method.

``resolve_model`` finds the weights (a mounted folder, a local Hugging Face directory, the bundled ``tiny-phi3``, or a
hub id); ``load_model`` loads them in the dtype and attention implementation the run needs; ``apply_method`` wraps
them for LoRA, DoRA or QLoRA with peft, or makes every weight trainable for full fine-tuning.
"""

from __future__ import annotations

import argparse
from pathlib import Path


class RecipeError(Exception):
    """Bad input or an impossible combination; the message says what would work."""


def resolve_model(args: argparse.Namespace) -> str:
    """A local directory to load from, or a hub id for ``from_pretrained``."""
    if args.model_path:
        p = Path(args.model_path)
        if not (p / "config.json").exists():
            found = sorted(p.rglob("config.json")) if p.is_dir() else []
            if not found:
                raise RecipeError(
                    f"--model_path {p}: no config.json in the folder (a Hugging Face model directory "
                    "holds config.json, the weights and the tokenizer)"
                )
            p = found[0].parent
        return str(p)
    name = args.model
    if name == "tiny-phi3":
        try:
            from azft.tiny_phi3 import ensure_tiny_phi3
        except ImportError:
            raise RecipeError(
                "model tiny-phi3 is built by azft, which is not installed in this environment; "
                "pass a model directory or hub id instead"
            ) from None
        return str(ensure_tiny_phi3())
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise RecipeError(f"--model {p}: no config.json there (expected a Hugging Face model directory)")
        return str(p.resolve())
    if name.startswith((".", "/", "~")):
        raise RecipeError(f"--model {name}: no such directory")
    return name


def _load_error(name: str, exc: Exception) -> RecipeError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return RecipeError(
        f"could not load model {name!r} from the Hugging Face hub ({first}). Without network access pass a local "
        "model directory (--model /path/to/dir), or a model already in the Hugging Face cache with "
        "HF_HUB_OFFLINE=1; for a quick offline run use --model tiny-phi3"
    )


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise _load_error(source, e) from None
    if not getattr(tok, "is_fast", False):
        raise RecipeError(
            f"model {source!r} has no fast tokenizer; the recipe needs one (offset mapping for the loss mask)"
        )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def pick_precision(requested: str, cuda: bool) -> tuple[str, str]:
    """The precision to train in, and why: ``auto`` picks the fastest one that trains correctly on this hardware."""
    import torch

    from ft_hardware import auto_precision, read_cpuinfo

    if requested == "auto":
        return auto_precision(cuda)
    if requested == "fp16" and not cuda:
        raise RecipeError(
            "--precision fp16 needs a CUDA GPU (mixed precision with loss scaling); on CPU use --precision bf16 or fp32"
        )
    if requested == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise RecipeError("--precision bf16 is not supported by this GPU; use --precision fp16 or auto")
    if requested == "bf16" and not cuda and not read_cpuinfo().bf16_units:
        return requested, "requested (this CPU has no bf16 units: bf16 autocast will be slower than fp32)"
    return requested, "requested"


def check_qlora(cuda: bool) -> None:
    if not cuda:
        raise RecipeError(
            "method qlora loads the base model in 4-bit with bitsandbytes, which needs a CUDA GPU, and none is "
            "available here. On this machine use --method lora (or dora, or full); run qlora on a GPU (for "
            "example the maap backend with a GPU cluster)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise RecipeError("method qlora needs the bitsandbytes package: pip install bitsandbytes") from None


def load_model(source: str, args: argparse.Namespace, precision: str, cuda: bool):
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict = {}
    compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    if args.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
        kwargs["dtype"] = compute_dtype
    elif args.method in ("lora", "dora") and args.deepspeed_stage == 0 and (cuda or precision == "bf16"):
        # frozen base weights stored in the compute dtype (no per-step casts); the adapter and its optimizer state
        # stay fp32 (peft keeps adapter weights in fp32)
        kwargs["dtype"] = compute_dtype
    else:
        kwargs["dtype"] = torch.float32  # full fine-tuning keeps fp32 master weights (autocast does the rest)
    if cuda and importlib.util.find_spec("flash_attn") is not None and precision in ("bf16", "fp16"):
        kwargs["attn_implementation"] = "flash_attention_2"  # varlen kernels honour packed position ids
    elif args.packing:
        from ft_attention import register

        kwargs["attn_implementation"] = register()  # per-example causal attention inside packed rows
    else:
        kwargs["attn_implementation"] = "sdpa"
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error(source, e) from None
    model.config.use_cache = False
    return model, kwargs["attn_implementation"]


def apply_method(model, args: argparse.Namespace):
    import torch

    if args.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if args.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    targets = args.lora_target_modules.strip()
    target_modules: str | list[str] = (
        "all-linear" if targets in ("", "all-linear") else [t.strip() for t in targets.split(",") if t.strip()]
    )
    if isinstance(target_modules, list):
        present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        missing = [t for t in target_modules if t not in present]
        if missing:
            linear = sorted(
                {
                    n.rsplit(".", 1)[-1]
                    for n, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head")
                }
            )
            raise RecipeError(
                f"--lora_target_modules: this model has no module named {', '.join(missing)} "
                f"(its linear layers: {', '.join(linear)}; or use all-linear)"
            )
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=target_modules,
        use_dora=args.method == "dora",
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as e:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        raise RecipeError(
            f"--lora_target_modules {targets!r}: {str(e).splitlines()[0][:200]} "
            f"(this model's linear layers: {', '.join(names)})"
        ) from None
    if args.method in ("lora", "dora") and args.deepspeed_stage == 0 and model.dtype in (torch.bfloat16, torch.float16):
        _keep_adapter_input_dtype(model)
    return model


def _keep_adapter_input_dtype(model) -> None:
    """Let the adapters take their input in the compute dtype instead of peft's cast to their own fp32.

    A base stored in half precision without DeepSpeed (which casts the whole model itself, autocast off) means the
    recipe trains under autocast (``load_model``), which runs the adapter's matmuls in half precision anyway: peft's
    cast of every adapter input to fp32 (``_cast_input_dtype``), only for autocast to cast it straight back, was two
    passes over the activations per adapted layer forward and two backward, for bitwise the same result (half to
    fp32 to half is exact). With LoRA dropout the dropout now runs in half precision: the same mask, its 1/(1 - p)
    rounded to bf16 (p = 0.05: 1.0547 for 1.0526); a step stays as close to an fp32 step as with peft's cast
    (tests/train/test_mfu.py). ``cast_input_dtype_enabled`` is the switch peft's own
    ``peft.helpers.disable_input_dtype_casting`` sets. Measured on the bench's short mix: about 5% more tokens/s in
    paired runs of the recipe alone (docs/mfu.md)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False
