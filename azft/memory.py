"""Per-GPU training memory, counted from the model's architecture and the training configuration.

Pure arithmetic: no torch, no I/O beyond reading a local ``config.json``. Every number is a sum of named terms, each
with the formula it came from (docs/memory.md explains them):

- **weights**: parameters × bytes per parameter as the recipe loads them (bf16 for LoRA/DoRA on a GPU, NF4 4-bit
  linear layers for QLoRA, fp32 master weights for full fine-tuning), ÷ world size under ZeRO-3;
- **gradients** and **optimizer state** of the trainable parameters (AdamW: two fp32 moments, plus fp32 master
  weights when DeepSpeed trains in half precision), ÷ world size by ZeRO stage, zero on the GPU when offloaded;
- **activations**: per decoder layer, the tensors autograd saves for the backward pass for this method and
  attention implementation (norm inputs, LoRA dropout masks and adapter inputs, rotary q/k, attention outputs and
  log-sum-exp, the gated MLP's intermediates), × layers, or the layer inputs plus one recomputed layer with
  gradient checkpointing; tokens = micro-batch × packed sequence length;
- **logits/loss buffer**: the recipe computes the LM head only at scored positions; the loss's fp32 log-softmax
  and its gradients, vocabulary × scored tokens;
- **working set**: ZeRO-3 gathered parameters, autocast weight copies, DoRA's weight-norm temporaries;
- **allowance**: CUDA context and allocator fragmentation (stated, not measured here).

The activation and state terms are checked against measured peaks of real training steps by
``tests/train/test_memory_calibration.py`` and ``bench/memory_estimate.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

GIB = 1024**3

#: CUDA context (driver, cuBLAS/cuDNN workspaces, the caching allocator's first blocks) per process. Stated
#: allowance: PyTorch's CUDA context takes 0.5–1 GiB on A100/H100 depending on the libraries loaded.
CUDA_CONTEXT_GIB = 1.0
#: Allocator fragmentation: the caching allocator reserves more than it hands out; stated allowance as a fraction
#: of the memory that changes during a step (activations, logits, gradients, working set).
FRAGMENTATION = 0.10
#: NF4 with double quantisation: 4 bits + one 8-bit absmax per 64 weights + one fp32 scale per 256 absmaxes.
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
#: The documented error bound of the activation + state estimate over the calibration grid (see docs/memory.md).
ERROR_BOUND = 0.15

PHI3_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ArchitectureError(ValueError):
    """A config.json that does not describe a decoder-only transformer azft can count."""


# ----------------------------------------------------------------------------------------------------- architecture


@dataclass(frozen=True)
class Architecture:
    """The numbers of a model's ``config.json`` that memory depends on."""

    model_type: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    tie_word_embeddings: bool = False
    head_dim: Optional[int] = None
    source: str = ""
    #: False when the modelling code differs from the Phi-3/Llama layout counted here (counted as if it did)
    exact: bool = True

    @property
    def d(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def fused(self) -> bool:
        """Phi-3 layout: one qkv_proj and one gate_up_proj per layer (Llama: separate q/k/v and gate/up)."""
        return self.model_type.startswith("phi3")

    def linears(self) -> dict[str, tuple[int, int]]:
        """Per-layer linear modules: name → (in_features, out_features)."""
        h, i, d = self.hidden_size, self.intermediate_size, self.d
        q, kv = self.num_heads * d, self.num_kv_heads * d
        if self.fused:
            return {"qkv_proj": (h, q + 2 * kv), "o_proj": (q, h), "gate_up_proj": (h, 2 * i), "down_proj": (i, h)}
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def layer_linear_params(self) -> int:
        return sum(a * b for a, b in self.linears().values())

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def norm_params(self) -> int:
        return (2 * self.num_layers + 1) * self.hidden_size

    def parameters(self) -> int:
        return (
            self.num_layers * self.layer_linear_params()
            + self.embedding_params()
            + self.head_params()
            + self.norm_params()
        )

    @classmethod
    def from_config(cls, cfg: dict, source: str = "config.json") -> "Architecture":
        def get(*names: str, default: Any = None) -> Any:
            for n in names:
                if cfg.get(n) is not None:
                    return cfg[n]
            if default is not None:
                return default
            raise ArchitectureError(f"{source}: no {names[0]!r} (needed for the memory estimate)")

        model_type = str(cfg.get("model_type") or "unknown")
        try:
            heads = int(get("num_attention_heads", "n_head"))
            arch = cls(
                model_type=model_type,
                hidden_size=int(get("hidden_size", "n_embd")),
                intermediate_size=int(get("intermediate_size", "ff_intermediate_size", "n_inner")),
                num_layers=int(get("num_hidden_layers", "n_layer")),
                num_heads=heads,
                num_kv_heads=int(get("num_key_value_heads", default=heads)),
                vocab_size=int(get("vocab_size")),
                # transformers' PretrainedConfig default is True when a config.json does not say
                tie_word_embeddings=bool(cfg.get("tie_word_embeddings", True)),
                head_dim=int(cfg["head_dim"]) if cfg.get("head_dim") else None,
                source=source,
                exact=model_type in ("phi3", "llama", "mistral", "qwen2"),
            )
        except (TypeError, ValueError) as e:
            if isinstance(e, ArchitectureError):
                raise
            raise ArchitectureError(f"{source}: {e}") from None
        if (
            min(
                arch.hidden_size,
                arch.intermediate_size,
                arch.num_layers,
                arch.num_heads,
                arch.num_kv_heads,
                arch.vocab_size,
            )
            < 1
            or arch.num_heads % arch.num_kv_heads
        ):
            raise ArchitectureError(f"{source}: sizes must be positive and attention heads a multiple of KV heads")
        return arch

    @classmethod
    def from_dir(cls, path: str | Path) -> "Architecture":
        cfg = Path(path) / "config.json"
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError) as e:
            raise ArchitectureError(f"{cfg}: cannot read ({e})") from None
        if not isinstance(data, dict):
            raise ArchitectureError(f"{cfg}: not a JSON object")
        return cls.from_config(data, source=str(cfg))


# ----------------------------------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class Setup:
    """One training configuration, as the recipe (components/finetune/src/train.py) would run it."""

    method: str = "lora"  # lora | qlora | dora | full
    micro_batch: int = 1
    seq_len: int = 2048
    gradient_checkpointing: bool = False
    precision: str = "bf16"  # bf16 | fp16 | fp32
    lora_r: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("qkv_proj", "o_proj")
    zero_stage: int = 0
    offload: str = "none"  # none | optimizer | parameters | all
    world_size: int = 1
    device: str = "cuda"  # cuda | cpu (dropout masks are bool on CUDA, a float tensor on CPU)
    attention: str = "azft_packed_sdpa"  # azft_packed_sdpa | flash_attention_2 | sdpa
    packing: bool = True
    #: fraction of the tokens that carry a label (reply tokens); 1.0 is the worst case
    scored_fraction: float = 1.0
    gradient_accumulation_steps: int = 1
    #: frozen base weights in half precision (LoRA/DoRA without DeepSpeed); None: as the recipe does, whenever it
    #: trains in half precision (bf16 or fp16 on a GPU, bf16 on a CPU)
    half_base_weights: Optional[bool] = None

    @property
    def half_base(self) -> bool:
        return self.half and (True if self.half_base_weights is None else self.half_base_weights)

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_len

    @property
    def peft(self) -> bool:
        return self.method in ("lora", "qlora", "dora")

    @property
    def half(self) -> bool:
        return self.precision in ("bf16", "fp16")

    @property
    def deepspeed(self) -> bool:
        return self.zero_stage > 0

    @property
    def autocast(self) -> bool:
        """The Trainer autocasts in half precision unless DeepSpeed casts the whole model itself."""
        return self.half and not self.deepspeed


@dataclass
class Term:
    name: str
    bytes: float
    formula: str
    group: str  # state | activation | working | allowance
    #: when it is alive: all step long (persistent), at the end of the forward pass (forward: everything saved for
    #: backward plus the loss buffers), or during the backward pass (backward: gradients being written, one layer's
    #: saved tensors and its activation gradients). The peak is persistent + max(forward, backward).
    phase: str = "persistent"
    note: str = ""

    @property
    def gib(self) -> float:
        return self.bytes / GIB

    def to_dict(self) -> dict:
        d = {"gb": round(self.gib, 2), "formula": self.formula, "group": self.group, "phase": self.phase}
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class Estimate:
    arch: Architecture
    setup: Setup
    terms: list[Term]
    trainable: int
    notes: list[str] = field(default_factory=list)

    def term(self, name: str) -> float:
        return sum(t.bytes for t in self.terms if t.name == name)

    def group(self, *groups: str) -> float:
        return sum(t.bytes for t in self.terms if t.group in groups)

    def phase(self, phase: str) -> float:
        return sum(t.bytes for t in self.terms if t.phase == phase)

    @property
    def peak_phase(self) -> str:
        return "forward" if self.phase("forward") >= self.phase("backward") else "backward"

    @property
    def peak(self) -> float:
        """Bytes PyTorch hands out at the step's peak (no allowances): what the calibration measures."""
        return self.phase("persistent") + max(self.phase("forward"), self.phase("backward"))

    @property
    def total(self) -> float:
        return self.peak + self.phase("allowance")

    @property
    def total_gib(self) -> float:
        return self.total / GIB

    @property
    def state(self) -> float:
        return self.group("state")

    @property
    def activations(self) -> float:
        return self.group("activation")

    def fits(self, gpu_memory_gib: float) -> bool:
        return self.total_gib <= gpu_memory_gib

    def to_dict(self) -> dict:
        a, s = self.arch, self.setup
        return {
            "label": "ESTIMATE",
            "total_gb": round(self.total_gib, 1),
            "total_formula": (
                "persistent + max(forward, backward) + allowances; the peak is at the end of the "
                f"{self.peak_phase} pass"
            ),
            "peak_phase": self.peak_phase,
            "terms": {t.name: t.to_dict() for t in self.terms},
            "architecture": {
                "model_type": a.model_type,
                "hidden_size": a.hidden_size,
                "intermediate_size": a.intermediate_size,
                "layers": a.num_layers,
                "heads": a.num_heads,
                "kv_heads": a.num_kv_heads,
                "vocab": a.vocab_size,
                "tied_embeddings": a.tie_word_embeddings,
                "parameters": a.parameters(),
                "source": a.source,
                "exact": a.exact,
            },
            "setup": {
                "method": s.method,
                "micro_batch": s.micro_batch,
                "seq_len": s.seq_len,
                "tokens": s.tokens,
                "gradient_checkpointing": s.gradient_checkpointing,
                "precision": s.precision,
                "lora_r": s.lora_r if s.peft else None,
                "lora_targets": list(s.lora_targets) if s.peft else None,
                "zero_stage": s.zero_stage,
                "offload": s.offload,
                "world_size": s.world_size,
                "attention": s.attention,
                "trainable_parameters": self.trainable,
            },
            "error_bound": f"±{ERROR_BOUND:.0%} on activations + state over the calibration grid (docs/memory.md)",
            "notes": self.notes,
        }


# ----------------------------------------------------------------------------------------------------- the count


def _targets(arch: Architecture, setup: Setup) -> list[str]:
    names = list(arch.linears())
    wanted = set(setup.lora_targets)
    if "all-linear" in wanted:
        return names
    return [n for n in names if n in wanted]


def trainable_parameters(arch: Architecture, setup: Setup) -> int:
    if not setup.peft:
        return arch.parameters()
    lin = arch.linears()
    per_layer = 0
    for name in _targets(arch, setup):
        n_in, n_out = lin[name]
        per_layer += setup.lora_r * (n_in + n_out) + (n_out if setup.method == "dora" else 0)
    return per_layer * arch.num_layers


def _state_terms(arch: Architecture, s: Setup, trainable: int) -> list[Term]:
    p = arch.parameters()
    world = max(1, s.world_size)
    w16 = 2 if s.half else 4
    if s.method == "qlora":
        linear = arch.num_layers * arch.layer_linear_params()
        rest = p - linear  # embeddings, LM head, norms: prepare_model_for_kbit_training casts them to fp32
        wbytes = linear * NF4_BYTES + rest * 4
        wform = (
            f"{linear / 1e9:.2f}B linear params × {NF4_BYTES:.3f} B (NF4, double quant) + {rest / 1e9:.2f}B "
            "other params × 4 B (fp32 after k-bit preparation)"
        )
    elif s.deepspeed:
        wbytes = p * w16
        wform = f"{p / 1e9:.2f}B params × {w16} B (DeepSpeed {s.precision})"
    elif s.peft:
        wbytes = p * (w16 if s.half_base else 4)
        wform = f"{p / 1e9:.2f}B params × {w16 if s.half_base else 4} B (frozen base" + (
            " in compute dtype)" if s.half_base else ")"
        )
    else:
        wbytes = p * 4
        wform = f"{p / 1e9:.2f}B params × 4 B (fp32 master weights; autocast computes in {s.precision})"
    adapter = 0.0
    if s.peft:
        a_bytes = w16 if s.deepspeed else 4
        adapter = trainable * a_bytes
        wform += f" + {trainable / 1e6:.1f}M adapter params × {a_bytes} B"
    if s.zero_stage == 3:
        if s.offload in ("parameters", "all"):
            wbytes, adapter = 0.0, 0.0
            wform = "0 (ZeRO-3 parameter offload: weights live in CPU memory)"
        else:
            wbytes, adapter = wbytes / world, adapter / world
            wform = f"({wform}) ÷ {world} GPUs (ZeRO-3)"
    terms = [Term("weights", wbytes + adapter, wform, "state")]

    g_bytes = 2 if (s.deepspeed and s.half) else 4
    grads = trainable * g_bytes
    gform = f"{trainable / 1e6:.1f}M trainable × {g_bytes} B"
    if s.zero_stage >= 2:
        grads /= world
        gform += f" ÷ {world} GPUs (ZeRO-{s.zero_stage})"
    elif not s.deepspeed and world > 1:
        grads *= 2
        gform += " × 2 (DDP gradient buckets)"
    # the Trainer frees gradients after each optimizer step; DeepSpeed keeps its buffers, accumulation keeps them
    kept = s.deepspeed or s.gradient_accumulation_steps > 1
    terms.append(Term("gradients", grads, gform, "state", "persistent" if kept else "backward"))

    master = 4 if (s.deepspeed and s.half) else 0
    optim = trainable * (8 + master)
    oform = f"{trainable / 1e6:.1f}M trainable × ({'4 fp32 master + ' if master else ''}8) B (AdamW moments)"
    if s.deepspeed and s.half:
        optim += trainable * 4 / (world if s.zero_stage >= 2 else 1)  # fp32 gradient partition for the step
        oform += " + fp32 gradient partition"
    if s.offload in ("optimizer", "all"):
        optim, oform = 0.0, "0 (optimizer state offloaded to CPU memory)"
    elif s.zero_stage >= 1:
        optim /= world
        oform = f"({oform}) ÷ {world} GPUs (ZeRO-{s.zero_stage})"
    terms.append(Term("optimizer", optim, oform, "state"))
    return terms


@dataclass
class _Dtypes:
    c: int  # what matmuls produce (compute dtype)
    res: int  # the residual stream between layers
    norm_out: int  # RMSNorm output
    adapter: int  # LoRA weights (fp32 unless DeepSpeed casts them)
    adapter_in: int  # what an adapter's input is cast to: its weights' dtype, or kept as it comes
    mask: int  # dropout mask bytes per element


def _dtypes(s: Setup) -> _Dtypes:
    h = 2 if s.half else 4
    if s.deepspeed:
        return _Dtypes(c=h, res=h, norm_out=h, adapter=h, adapter_in=h, mask=1 if s.device == "cuda" else h)
    if s.method == "full":
        res = 4  # fp32 weights: embeddings and residual adds stay fp32, autocast computes the matmuls in half
    elif s.method == "qlora":
        res = 4  # k-bit preparation casts embeddings and norms to fp32
    else:
        res = h if s.half_base else 4  # the recipe loads a frozen base in the compute dtype when it trains in half
    c = h if s.autocast else res
    # a half-precision base under LoRA/DoRA: the recipe keeps each adapter's input in the compute dtype (autocast
    # runs the adapter's matmuls there anyway) instead of peft's cast to the adapter's fp32
    a_in = res if s.method in ("lora", "dora") and res < 4 else 4
    return _Dtypes(c=c, res=res, norm_out=res, adapter=4, adapter_in=a_in, mask=1 if s.device == "cuda" else a_in)


def _layer_saved(arch: Architecture, s: Setup, first: bool) -> list[tuple[str, str, float]]:
    """What autograd keeps for one decoder layer, per token: (storage key, tensor, bytes).

    Tensors sharing a storage (views, the same input saved by two operations) share a key and count once.
    ``first``: layer 0 under PEFT, whose input (frozen embeddings) needs no gradient.
    """
    t = _dtypes(s)
    h, d, heads, kv = arch.hidden_size, arch.d, arch.num_heads, arch.num_kv_heads
    lin = arch.linears()
    targets = set(_targets(arch, s)) if s.peft else set()
    grad_in = not (first and s.peft)  # does this layer's input need a gradient?
    out: list[tuple[str, str, float]] = []

    def norm(key: str, x_key: str) -> None:
        if not grad_in and key == "norm1":
            return  # nothing upstream needs a gradient: autograd records nothing
        # RMSNorm upcasts to fp32; with an fp32 stream that is the stream tensor itself
        out.append((x_key if t.res == 4 else f"{key}.x32", f"{key} input (fp32)", h * 4))
        out.append((f"{key}.rstd", f"{key} 1/rms", 4))
        if not s.peft:  # a trainable norm weight saves its normalised input
            out.append((f"{key}.xhat", f"{key} normalised input", h * t.res))

    def linear(name: str, x_key: str, x_bytes: int, input_grad: bool = True) -> None:
        n_in, n_out = lin[name]
        if not s.peft:
            cast = s.autocast and x_bytes != t.c
            out.append((f"{name}.in_c" if cast else x_key, f"{name} input", n_in * (t.c if cast else x_bytes)))
        elif name in targets:
            out.extend(_adapter_saved(name, n_in, n_out, x_key, x_bytes, input_grad, s, t))

    # attention block
    norm("norm1", "x")
    x1 = "norm1.out"
    if arch.fused:
        linear("qkv_proj", x1, t.norm_out, grad_in)
        v_key, v_bytes = "qkv.out", lin["qkv_proj"][1] * t.c
    else:
        for n in ("q_proj", "k_proj", "v_proj"):
            linear(n, x1, t.norm_out, grad_in)
        v_key, v_bytes = "v.out", kv * d * t.c
    if s.attention == "azft_packed_sdpa":
        out.extend(_packed_attention_saved(heads, d, s, t))
    else:
        out.append(("q.rot", "rotary q", heads * d * t.c))
        out.append(("k.rot", "rotary k", kv * d * t.c))
        out.append((v_key, "v (its projection output)", v_bytes))
        out.append(("attn.out", "attention output", heads * d * t.c))
        out.append(("attn.lse", "attention log-sum-exp (fp32)", heads * 4))
    linear("o_proj", "attn.merged", t.c)  # its input (heads merged) is kept only by what the method saves
    # MLP block: residual add → norm → gate/up → SiLU(gate) × up → down
    norm("norm2", "x2")
    i = arch.intermediate_size
    if arch.fused:
        linear("gate_up_proj", "norm2.out", t.norm_out)
        out.append(("gate_up.out", "gate_up output (SiLU and product inputs)", 2 * i * t.c))
    else:
        linear("gate_proj", "norm2.out", t.norm_out)
        linear("up_proj", "norm2.out", t.norm_out)
        out.append(("gate.out", "gate output", i * t.c))
        out.append(("up.out", "up output", i * t.c))
    out.append(("act.out", "SiLU(gate)", i * t.c))
    linear("down_proj", "mlp.prod", t.c)  # SiLU(gate) × up, kept only by what the method saves
    return out


#: components/finetune/src/ft_attention.py's MATMUL_MAX: on CPU in half precision, groups of examples up to this many
#: tokens run the attention as two matmuls around a softmax
ATTENTION_MATMUL_MAX = 512
#: and its LENGTH_MULTIPLE: each group of examples is padded to its longest rounded up to a multiple of this
ATTENTION_LENGTH_MULTIPLE = 16


def _packed_attention_saved(heads: int, d: int, s: Setup, t: _Dtypes) -> list[tuple[str, str, float]]:
    """The recipe's per-example attention over packed rows (components/finetune/src/ft_attention.py): q, k and v
    are copied into a layout of one row per example (each group of examples padded to its longest; k and v repeated
    to every query head under grouped-query attention). A micro-batch holds at most ``micro_batch`` examples of at
    most ``seq_len`` tokens, so the layout has at most ``micro_batch × seq_len`` positions: the token count every
    activation term uses. The rotary q/k and the projection output are not kept (the copies are).

    * The flash kernel (a GPU; a CPU in fp32; a CPU's groups longer than ``ATTENTION_MATMUL_MAX``) keeps the
      copies (in fp32 on CPU, where it runs in fp32), its output and its log-sum-exp.
    * The matmul path (a CPU in half precision, groups up to ``ATTENTION_MATMUL_MAX`` tokens) keeps the scaled q,
      k and v in half precision and, per (query, key) pair of each example's padded square, the softmax output
      in half precision: at most ``min(seq_len, ATTENTION_MATMUL_MAX)`` pairs per position
      (``seq_len`` rounded up to ``ATTENTION_LENGTH_MULTIPLE``, as the groups are).
    """
    k = 4 if s.device == "cpu" else t.c
    where = "fp32" if k == 4 else "compute dtype"
    kernel = [
        ("attn.q", f"q in the per-example layout ({where})", heads * d * k),
        ("attn.k", f"k in the per-example layout ({where})", heads * d * k),
        ("attn.v", f"v in the per-example layout ({where})", heads * d * k),
        ("attn.out", f"attention output in the per-example layout ({where})", heads * d * k),
        ("attn.lse", "attention log-sum-exp (fp32)", heads * 4),
    ]
    if not (s.device == "cpu" and t.res < 4):
        return kernel
    span = min(-(-s.seq_len // ATTENTION_LENGTH_MULTIPLE) * ATTENTION_LENGTH_MULTIPLE, ATTENTION_MATMUL_MAX)
    matmul = [
        ("attn.q", "scaled q in the per-example layout (compute dtype)", heads * d * t.c),
        ("attn.k", "k in the per-example layout (compute dtype)", heads * d * t.c),
        ("attn.v", "v in the per-example layout (compute dtype)", heads * d * t.c),
        ("attn.p", f"attention probabilities (compute dtype), {span} keys per position", heads * span * t.c),
    ]
    if s.seq_len <= ATTENTION_MATMUL_MAX:
        return matmul
    return max(kernel, matmul, key=lambda terms: sum(b for _, _, b in terms))  # either path: the larger


def _adapter_saved(
    name: str, n_in: int, n_out: int, x_key: str, x_bytes: int, input_grad: bool, s: Setup, t: _Dtypes
) -> list[tuple[str, str, float]]:
    """A LoRA/DoRA adapter: peft casts the input to the adapter dtype (unless the recipe keeps it in the compute
    dtype), applies dropout, then lora_A (autocast casts again) and lora_B; DoRA's magnitude gradient also keeps the
    base output and the scaled LoRA output."""
    out = []
    a_in = t.adapter_in
    cast = x_bytes != a_in
    if s.lora_dropout > 0:
        if input_grad:
            out.append((f"{name}.mask", f"{name} dropout mask", n_in * t.mask))
        key, b = f"{name}.drop", a_in
    else:
        key, b = (f"{name}.cast", a_in) if cast else (x_key, x_bytes)
    if s.autocast and b != t.c:
        key, b = f"{name}.a_in", t.c
    out.append((key, f"{name} lora_A input", n_in * b))
    out.append((f"{name}.a_out", f"{name} lora_A output", s.lora_r * (t.c if s.autocast else a_in)))
    if s.method == "dora":
        out.append((f"{name}.dora", f"{name} DoRA base + LoRA outputs", 2 * n_out * t.c))
    return out


def _dedup(items: Iterable[tuple[str, str, float]]) -> dict[str, tuple[str, float]]:
    seen: dict[str, tuple[str, float]] = {}
    for key, what, b in items:
        if key not in seen:
            seen[key] = (what, b)
    return seen


def layer_bytes_per_token(arch: Architecture, s: Setup, first: bool = False) -> float:
    return sum(b for _, b in _dedup(_layer_saved(arch, s, first)).values())


def _activation_terms(arch: Architecture, s: Setup) -> list[Term]:
    t = _dtypes(s)
    T, L = s.tokens, arch.num_layers
    per_layer = layer_bytes_per_token(arch, s)
    first = layer_bytes_per_token(arch, s, first=True)
    rope = 2 * arch.d * t.res  # cos and sin, shared by every layer
    terms = []
    if s.gradient_checkpointing:
        # each layer keeps only its input; one layer at a time is recomputed in backward (the backward_layer term)
        inputs = L * arch.hidden_size * t.res * T
        terms.append(
            Term(
                "activations",
                inputs + rope * T,
                f"{L} layers × {T} tokens × {arch.hidden_size} × {t.res} B (checkpointed layer inputs) + "
                "rotary cos/sin; the recomputed layer is in backward_layer",
                "activation",
                "forward",
            )
        )
    else:
        total = (first + (L - 1) * per_layer + rope) * T
        terms.append(
            Term(
                "activations",
                total,
                f"{T} tokens ({s.micro_batch} × {s.seq_len}) × ({L} layers × {per_layer:,.0f} B per token "
                f"per layer saved for backward, {s.method}, {s.attention}) + rotary cos/sin",
                "activation",
                "forward",
            )
        )
    # final norm, and the hidden states at scored positions that go into the LM head
    n = T * s.scored_fraction
    head_in = n * arch.hidden_size * (t.c if not s.peft else 0)
    final = T * (arch.hidden_size * 4 + 4) + head_in
    terms.append(
        Term(
            "final_norm",
            final,
            f"{T} tokens × ({arch.hidden_size} × 4 + 4) B (final RMSNorm input)"
            + (" + LM-head input" if head_in else ""),
            "activation",
            "forward",
        )
    )
    v = arch.vocab_size
    if s.packing:
        logits = n * v * 12
        lform = (
            f"{int(n)} scored tokens × {v} vocab × 12 B (fp32 log-softmax kept for backward + its gradient "
            "+ the input gradient; the recipe projects only scored positions)"
        )
    else:
        logits = T * v * (12 + t.c)
        lform = (
            f"{T} tokens × {v} vocab × ({t.c} + 12) B (padded batches: logits at every position, fp32 "
            "log-softmax and its gradients)"
        )
    terms.append(Term("logits_loss", logits, lform, "activation", "forward"))
    # during backward: the running layer's saved tensors and the activation gradients flowing through its MLP.
    # Full fine-tuning without kept gradients: layer 0's and the embeddings' gradients are not written yet then.
    work = T * (per_layer + 2 * arch.intermediate_size * t.c + 2 * arch.hidden_size * 4)
    wform = (
        f"{T} tokens × ({per_layer:,.0f} B saved by the running layer + 2 × {arch.intermediate_size} × {t.c} "
        f"+ 2 × {arch.hidden_size} × 4 B activation gradients"
    )
    adapted = [arch.linears()[n][1] for n in _targets(arch, s)] if s.peft else []
    if adapted and t.adapter_in != t.c:
        # adapters fed an fp32 copy of their input (peft's cast): the gradient back through it is fp32 (calibrated)
        work += T * max(adapted) * 4
        wform += f" + {max(adapted)} × 4 B fp32 gradient of the widest adapted module's output"
    wform += ")"
    if not s.peft and not (s.deepspeed or s.gradient_accumulation_steps > 1):
        not_yet = (arch.embedding_params() + arch.layer_linear_params()) * 4
        work = max(0.0, work - not_yet)
        wform += " − gradients of layer 0 and the embeddings (not written yet)"
    terms.append(Term("backward_layer", work, wform, "activation", "backward"))
    return terms


def _working_terms(arch: Architecture, s: Setup) -> list[Term]:
    terms = []
    h = arch.hidden_size
    if s.zero_stage == 3:
        layer = arch.layer_linear_params() + 2 * h
        live = (layer + int(0.9 * h * h)) * 2
        terms.append(
            Term(
                "zero3_gathered",
                live,
                f"({layer / 1e6:.0f}M params of one layer + prefetch bucket "
                f"0.9 × {h}²) × 2 B (parameters gathered for the running layer)",
                "working",
            )
        )
    if s.deepspeed:
        terms.append(Term("zero_buckets", h * h * 2 * 2, f"2 × {h}² × 2 B (reduce buckets)", "working"))
    if s.method == "full" and s.autocast and not s.gradient_checkpointing:
        p = arch.parameters()
        terms.append(
            Term(
                "autocast_weights",
                p * 2,
                f"{p / 1e9:.2f}B × 2 B (half-precision weight copies autocast "
                "makes in the forward pass, kept for backward)",
                "working",
                "forward",
            )
        )
    elif s.method == "full" and s.autocast:
        head = arch.embedding_params() if arch.tie_word_embeddings else arch.head_params()
        layer = arch.layer_linear_params()
        terms.append(
            Term(
                "autocast_weights",
                head * 2,
                f"{head / 1e6:.0f}M LM-head params × 2 B (its half-precision copy; checkpointed layers keep none)",
                "working",
                "forward",
            )
        )
        terms.append(
            Term(
                "autocast_weights_recompute",
                layer * 2,
                f"{layer / 1e6:.0f}M params of one layer × 2 B (the recomputed layer's half-precision weight copies)",
                "working",
                "backward",
            )
        )
    if s.method == "dora":
        n_in, n_out = max(arch.linears().values(), key=lambda io: io[0] * io[1])
        terms.append(
            Term(
                "dora_weight_norm",
                n_in * n_out * 4 * 3,
                f"3 × {n_in} × {n_out} × 4 B (the merged weight and its norm, computed each forward)",
                "working",
                "backward" if s.gradient_checkpointing else "forward",
            )
        )
    return terms


def estimate(arch: Architecture, setup: Setup) -> Estimate:
    """Per-GPU memory for one training configuration, term by term."""
    trainable = trainable_parameters(arch, setup)
    terms = _state_terms(arch, setup, trainable) + _activation_terms(arch, setup) + _working_terms(arch, setup)
    notes = []
    if not arch.exact:
        notes.append(f"{arch.model_type}: its layers are counted as the Phi-3 layout (approximate)")
    if setup.method == "qlora":
        notes.append(
            "QLoRA needs CUDA: its activations are counted like LoRA's with the fp32 norms and embeddings of "
            "k-bit preparation, and are not measured by the CPU calibration"
        )
    est = Estimate(arch, setup, terms, trainable, notes)
    if setup.device == "cuda":
        dynamic = max(est.phase("forward"), est.phase("backward")) + est.term("gradients")
        terms.append(
            Term(
                "cuda_context",
                CUDA_CONTEXT_GIB * GIB,
                f"{CUDA_CONTEXT_GIB} GiB (CUDA context, stated allowance)",
                "allowance",
                "allowance",
            )
        )
        terms.append(
            Term(
                "fragmentation",
                dynamic * FRAGMENTATION,
                f"{FRAGMENTATION:.0%} × (the larger of the "
                "forward and backward phases + gradients) (caching-allocator fragmentation, stated "
                "allowance)",
                "allowance",
                "allowance",
            )
        )
    return est


# ----------------------------------------------------------------------------------------------------- plans


def architecture_for(model: Any, cat: Any) -> tuple[Optional[Architecture], str]:
    """The architecture of a plan's model: the catalog's section for known models, a local model's config.json.

    Returns (None, why) when it is unknown; the plan shows the reason instead of a guess.
    """
    local = getattr(model, "local_path", None)
    if local:
        try:
            return Architecture.from_dir(local), ""
        except ArchitectureError as e:
            return None, str(e)
    entry = (cat.raw.get("architectures") or {}).get(model.id)
    if entry:
        where = f"https://huggingface.co/{model.hf_id}/blob/main/config.json" if model.hf_id else model.id
        src = ", ".join(entry.get("sources") or ["catalog"])
        try:
            return Architecture.from_config(entry, source=f"catalog architectures.{model.id} ({src}: {where})"), ""
        except ArchitectureError as e:
            return None, str(e)
    return None, (
        f"architecture of {model.id} unknown: azft reads config.json from the catalog or a local model "
        "directory (give `model:` a local directory, or add it under `architectures:` in "
        "~/.azft/catalog.yaml)"
    )


def world_size(plan: Any, cat: Any, sku: Optional[str] = None) -> int:
    spec = plan.spec
    if plan.target == "local":
        return spec.local.num_processes
    info = cat.skus.get(sku or spec.compute.instance_type or "", {})
    gpus = spec.compute.gpus_per_node or info.get("gpus") or 1
    if sku and info.get("gpus"):  # another size: as many processes per node as it has GPUs, at most
        gpus = min(gpus, info["gpus"]) if spec.compute.gpus_per_node else info["gpus"]
    return gpus * spec.compute.instance_count


def setup_for(plan: Any, cat: Any, sku: Optional[str] = None) -> Setup:
    """The training configuration a plan runs: spec values resolved as the recipe resolves them."""
    spec, hp = plan.spec, plan.hyperparameters
    device = "cuda"
    if plan.target == "local" and spec.local.device != "cuda":
        import shutil

        device = "cuda" if spec.local.device == "auto" and shutil.which("nvidia-smi") else "cpu"
    precision = hp.get("precision") or "auto"
    if precision == "auto":  # the recipe: bf16 where the GPU supports it (Ampere and newer), else fp16
        gpu = str(cat.skus.get(sku or spec.compute.instance_type or "", {}).get("gpu", ""))
        precision = "fp32" if device == "cpu" else ("fp16" if gpu.startswith(("V100", "T4")) else "bf16")
    ds = spec.compute.deepspeed
    return Setup(
        method=spec.method,
        micro_batch=int(hp["batch_size"]),
        seq_len=int(hp["max_seq_length"]),
        gradient_checkpointing=bool(hp.get("gradient_checkpointing")),
        precision=precision,
        lora_r=spec.lora.r,
        lora_dropout=spec.lora.dropout,
        lora_targets=tuple(spec.lora.target_modules),
        zero_stage=ds.stage,
        offload=ds.offload,
        world_size=world_size(plan, cat, sku),
        device=device,
        attention="azft_packed_sdpa" if hp.get("packing", True) else "sdpa",
        packing=bool(hp.get("packing", True)),
        gradient_accumulation_steps=int(hp.get("gradient_accumulation_steps") or 1),
    )


def estimate_plan(plan: Any, cat: Any, sku: Optional[str] = None) -> tuple[Optional[Estimate], str]:
    arch, why = architecture_for(plan.model, cat)
    if arch is None:
        return None, why
    return estimate(arch, setup_for(plan, cat, sku)), ""


# ----------------------------------------------------------------------------------------------------- serving


def serving_gib(arch: Architecture, context_tokens: int, *, bytes_per_param: int = 2, batch: int = 1) -> float:
    """GPU memory to serve a model (GiB): half-precision weights, the KV cache of ``batch`` sequences of
    ``context_tokens`` in the same precision, 10% allocator slack and 1 GiB for the CUDA context and the scoring
    server's workspace (the last two are assumptions, stated here)."""
    weights = arch.parameters() * bytes_per_param
    kv = 2 * arch.num_layers * arch.num_kv_heads * arch.d * context_tokens * batch * bytes_per_param
    return ((weights + kv) * 1.10) / 2**30 + 1.0
