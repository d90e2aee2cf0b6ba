"""Measure the memory of real training steps and compare it with the estimate of ``azft.memory``.

Each case builds a small Phi-3 (random weights, saved as a Hugging Face model directory) and trains it with the
recipe's own pieces — ``load_model``, ``apply_method``, the recipe's Trainer subclass and its packed loss that
projects only scored positions, ``PackingCollator`` — through the Hugging Face Trainer for a few steps. The second
optimizer step is measured, when AdamW's moments already exist:

- on CUDA, ``torch.cuda.max_memory_allocated()`` over the step (everything the caching allocator handed out);
- on CPU, the running sum of every allocation and free the CPU allocator reports to ``torch.profiler`` during the
  step (``profile_memory=True``: the same quantity, bytes handed out by PyTorch's allocator, as its maximum),
  added to the bytes alive when the step starts (weights, optimizer state), counted from the tensors.

The estimate is compared without its allowances (CUDA context, fragmentation): those are what the allocator
reserves beyond what PyTorch hands out, which neither measurement sees.

torch, transformers and peft are imported inside the functions only.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from azft.memory import Architecture, Estimate, Setup, estimate


@dataclass(frozen=True)
class Case:
    hidden: int = 64
    layers: int = 2
    seq: int = 128
    batch: int = 2
    method: str = "lora"
    checkpointing: bool = False
    heads: int = 4
    kv_heads: int = 4
    vocab: int = 640
    lora_dropout: float = 0.05
    targets: str = "all-linear"
    #: fp32, or bf16: the recipe's bf16 layout (bf16 base weights, fp32 adapters, bf16 autocast; on a CPU as on a GPU)
    precision: str = "fp32"

    @property
    def intermediate(self) -> int:
        return self.hidden * 8 // 3 // 8 * 8

    def label(self) -> str:
        return (
            f"h{self.hidden} L{self.layers} S{self.seq} B{self.batch} {self.method}"
            f"{' ckpt' if self.checkpointing else ''}{' gqa' if self.kv_heads < self.heads else ''}"
            f"{' bf16' if self.precision == 'bf16' else ''}{' nodrop' if not self.lora_dropout else ''}"
        )

    def architecture(self) -> Architecture:
        return Architecture(
            "phi3",
            self.hidden,
            self.intermediate,
            self.layers,
            self.heads,
            self.kv_heads,
            self.vocab,
            False,
            source="calibration case",
        )


#: The grid: hidden size, layers, sequence length, micro-batch, method and checkpointing each varied.
GRID: tuple[Case, ...] = (
    Case(),
    Case(hidden=128),
    Case(layers=4),
    Case(seq=256),
    Case(batch=4),
    Case(checkpointing=True),
    Case(hidden=128, layers=4, checkpointing=True),
    Case(method="dora"),
    Case(method="full"),
    Case(method="full", checkpointing=True),
    Case(method="full", hidden=128, seq=256),
    Case(kv_heads=2),
    Case(lora_dropout=0.0, targets="qkv_proj,o_proj"),
    Case(hidden=128, seq=256, batch=4, layers=4),
    Case(method="dora", checkpointing=True, batch=4),
    Case(precision="bf16"),
    Case(precision="bf16", lora_dropout=0.0, kv_heads=2),
    Case(precision="bf16", method="full"),
    Case(precision="bf16", checkpointing=True, hidden=128),
    Case(precision="bf16", method="dora", seq=256),
    Case(precision="bf16", method="full", checkpointing=True, layers=4),
)
#: The smaller set the test suite runs (seconds on two cores).
QUICK: tuple[Case, ...] = (
    Case(),
    Case(hidden=128, layers=4, checkpointing=True),
    Case(seq=256, batch=1, method="dora"),
    Case(method="full", checkpointing=True),
    Case(precision="bf16", checkpointing=True, hidden=128),
    Case(precision="bf16", lora_dropout=0.0, kv_heads=2, batch=4),
)


@dataclass
class Result:
    case: Case
    device: str
    estimate_bytes: float
    measured_bytes: float
    estimate_dynamic: float
    measured_dynamic: float

    @property
    def error(self) -> float:
        return self.estimate_bytes / self.measured_bytes - 1

    @property
    def dynamic_error(self) -> float:
        return self.estimate_dynamic / self.measured_dynamic - 1

    def to_dict(self) -> dict:
        return {
            "case": self.case.label(),
            **asdict(self.case),
            "device": self.device,
            "estimate_bytes": self.estimate_bytes,
            "measured_bytes": self.measured_bytes,
            "error": self.error,
            "estimate_dynamic": self.estimate_dynamic,
            "measured_dynamic": self.measured_dynamic,
            "dynamic_error": self.dynamic_error,
        }


def _recipe():
    from azft.resources import components_dir

    src = components_dir() / "finetune" / "src"
    if str(src) not in sys.path:
        sys.path.append(str(src))
    import ft_data
    import ft_model
    import ft_trainer
    import train

    return train, ft_model, ft_trainer, ft_data


def setup_for_case(case: Case, cuda: bool, attention: str = "azft_packed_sdpa") -> Setup:
    return Setup(
        attention=attention,
        method=case.method,
        micro_batch=case.batch,
        seq_len=case.seq,
        gradient_checkpointing=case.checkpointing,
        precision="bf16" if cuda else case.precision,
        lora_r=8,
        lora_dropout=case.lora_dropout,
        lora_targets=tuple(case.targets.split(",")),
        device="cuda" if cuda else "cpu",
        scored_fraction=(case.seq - 1) / case.seq,
    )


def estimate_case(case: Case, cuda: bool, attention: str = "azft_packed_sdpa") -> Estimate:
    return estimate(case.architecture(), setup_for_case(case, cuda, attention))


def _model_dir(case: Case, root: Path) -> Path:
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    cfg = Phi3Config(
        hidden_size=case.hidden,
        intermediate_size=case.intermediate,
        num_hidden_layers=case.layers,
        num_attention_heads=case.heads,
        num_key_value_heads=case.kv_heads,
        vocab_size=case.vocab,
        max_position_embeddings=max(4096, case.seq),
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(0)
    path = root / case.label().replace(" ", "_")
    Phi3ForCausalLM(cfg).save_pretrained(path)
    return path


class _Meter:
    """Peak bytes of one training step, on CUDA or through the CPU allocator's profiler events."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.prof = None
        self.base = 0
        self.peak_delta = 0

    def start(self, live_bytes: int) -> None:
        import torch

        self.base = live_bytes
        if self.cuda:
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            return
        from torch.profiler import ProfilerActivity, profile

        self.prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self.prof.__enter__()

    def stop(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.peak_delta = torch.cuda.max_memory_allocated() - self.base
            return
        self.prof.__exit__(None, None, None)
        events = self.prof.profiler.kineto_results.events()
        sizes = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
        cur = peak = 0
        for _, size in sizes:
            cur += size
            peak = max(peak, cur)
        self.peak_delta = peak


def _live_state_bytes(model, optimizer) -> int:
    """Bytes alive before the step: parameters, buffers and optimizer state (each storage once)."""
    seen: dict[int, int] = {}
    tensors = list(model.parameters()) + list(model.buffers())
    if optimizer is not None:
        for st in optimizer.state.values():
            tensors += [v for v in st.values() if hasattr(v, "untyped_storage")]
    for t in tensors:
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def measure(case: Case, workdir: Optional[Path] = None) -> Result:
    """Train ``case`` for two optimizer steps with the recipe and measure the second."""
    import torch

    train, ft_model, ft_trainer, ft_data = _recipe()
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        source = _model_dir(case, root)
        args = train.build_parser().parse_args(
            [
                "--train_data",
                "unused",
                "--model_output",
                str(root / "out"),
                "--metrics",
                str(root / "metrics"),
                "--method",
                case.method,
                "--batch_size",
                str(case.batch),
                "--max_seq_length",
                str(case.seq),
                "--lora_r",
                "8",
                "--lora_alpha",
                "16",
                "--lora_dropout",
                str(case.lora_dropout),
                "--lora_target_modules",
                case.targets,
                "--gradient_checkpointing",
                str(case.checkpointing).lower(),
            ]
        )
        precision = "bf16" if cuda else case.precision
        model, attn = ft_model.load_model(str(source), args, precision, cuda)
        model = ft_model.apply_method(model, args)
        measured = _train_and_measure(ft_trainer, ft_data, model, case, root, cuda)
    est = estimate_case(case, cuda, attn)
    est_static = est.term("weights") + est.term("optimizer")
    est_total = est.peak
    return Result(
        case, "cuda" if cuda else "cpu", est_total, measured[0] + measured[1], est_total - est_static, measured[1]
    )


def _train_and_measure(ft_trainer, ft_data, model, case: Case, root: Path, cuda: bool):
    import torch
    from transformers import TrainerCallback

    g = torch.Generator().manual_seed(1)
    rows = [
        {"input_ids": ids, "labels": list(ids)}
        for ids in (torch.randint(3, case.vocab, (case.seq,), generator=g).tolist() for _ in range(4 * case.batch))
    ]
    meter = _Meter(cuda)
    holder: list = []

    class StepMeter(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == 1:
                meter.start(_live_state_bytes(model, holder[0].optimizer))

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == 2:
                meter.stop()

    targs = ft_trainer.RecipeTrainingArguments(
        output_dir=str(root / "ckpt"),
        max_steps=2,
        per_device_train_batch_size=case.batch,
        learning_rate=1e-4,
        bf16=cuda or case.precision == "bf16",
        use_cpu=not cuda,
        **ft_trainer.checkpointing_args(case.checkpointing),
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        log_level="error",
        seed=0,
    )
    trainer = ft_trainer.RecipeTrainer(
        model=model,
        args=targs,
        train_dataset=ft_trainer.ListDataset(rows),
        data_collator=ft_data.PackingCollator(0, case.seq),
        callbacks=[StepMeter()],
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the end-of-training summary line: not part of the measurement
    holder.append(trainer)
    trainer.train()
    return meter.base, meter.peak_delta


def run(cases=GRID, workdir: Optional[Path] = None) -> list[Result]:
    return [measure(c, workdir) for c in cases]


def main() -> int:
    results = run()
    print(json.dumps([r.to_dict() for r in results]))
    return 0
