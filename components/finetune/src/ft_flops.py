"""Model FLOPs of a training step: the arithmetic the model needs, forward and backward (docs/mfu.md).

For each linear layer of ``d_in → d_out`` and each token it processes:

* forward: ``2·d_in·d_out`` (one multiply-add per weight),
* backward, input gradient: ``2·d_in·d_out``, only when something trainable lies upstream (the first layer's
  attention projections under LoRA need none: the embeddings below them are frozen),
* backward, weight gradient: ``2·d_in·d_out``, only when the weight is trainable.

So a frozen base weight under LoRA/DoRA/QLoRA costs 4 FLOPs per weight per token, a trainable one 6. A LoRA adapter
of rank r adds ``r·(d_in + d_out)`` trainable weights. DoRA adds, once per forward, the column norms of ``W + BA``
(``2·r·d_in·d_out + 3·d_in·d_out``, no backward: peft detaches them) and, when LoRA dropout is on, a second
product of the base weight with the dropped-out input. 4-bit QLoRA weights are dequantized and multiplied in the
compute dtype: the same FLOPs as LoRA.

Attention scores and their weighted sum (``QKᵀ`` and ``PV``) cost ``4·h·d_head`` per (query, key) pair and layer
forward, twice that backward; a causal example of ``n`` tokens has ``n(n+1)/2`` pairs (fewer with a sliding
window). Examples are counted by their own length: packing and padding change neither.

The LM head (``d → vocab``) counts only at the scored positions, those whose next token is a reply label — what the
recipe computes. Norms, activations, rotary embeddings and the softmax are element-wise and not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100
ATTENTION_OUTPUT_NAMES = ("o_proj", "out_proj")


def causal_pairs(n: int, window: int | None = None) -> int:
    """(query, key) pairs a causal example of ``n`` tokens attends over; keys at most ``window`` back."""
    if not window or window >= n:
        return n * (n + 1) // 2
    return window * (window + 1) // 2 + (n - window) * window


@dataclass
class ModelFlops:
    """Forward + backward FLOPs of a model, split by what they scale with."""

    per_token: float  # every linear layer but the LM head, per real token
    per_scored: float  # the LM head, per scored position
    per_pair: float  # attention over all layers, per causal (query, key) pair
    per_forward: float = 0.0  # DoRA's weight norms, once per forward
    window: int | None = None  # sliding-window attention span, if any

    def example(self, length: int, scored: int) -> float:
        return self.per_token * length + self.per_scored * scored + self.per_pair * causal_pairs(length, self.window)

    def batch(self, inputs: dict) -> float:
        """FLOPs of one micro-batch from the collator's ``example_lengths`` and ``labels``."""
        lengths = [int(n) for n in inputs["example_lengths"].tolist()]
        scored = int((inputs["labels"] != IGNORE_INDEX).sum())
        pairs = sum(causal_pairs(n, self.window) for n in lengths)
        return self.per_token * sum(lengths) + self.per_scored * scored + self.per_pair * pairs + self.per_forward

    @classmethod
    def of(cls, model, *, training: bool = True) -> "ModelFlops":
        return _Counter(model, training).count()


def _trainable(module) -> bool:
    weight = getattr(module, "weight", None)
    return bool(weight is not None and weight.requires_grad)


class _Counter:
    """Walks the linear layers in execution order (registration order for Phi-3 and Llama-like models)."""

    def __init__(self, model, training: bool):
        import torch

        self.model, self.training, self.linear = model, training, torch.nn.Linear
        cfg = model.config
        self.heads = cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.window = getattr(cfg, "sliding_window", None) or None
        self.layers = cfg.num_hidden_layers
        self.upstream = _trainable(model.get_input_embeddings())  # does an input gradient have a use yet?
        self.per_token = self.per_pair = self.per_forward = 0.0
        self.attention_layers = 0

    def count(self) -> ModelFlops:
        head = self.model.get_output_embeddings()
        for name, module in self._execution_order(head):
            self._attention_before(name)
            if hasattr(module, "lora_A"):
                self._lora(module)
            else:
                self._plain(module.in_features, module.out_features, _trainable(module))
        for _ in range(self.layers - self.attention_layers):  # a model without recognisable o_proj layers
            self._attention()
        d, v = head.in_features, head.out_features
        per_scored = 2 * d * v * (1 + self._bwd(self.upstream) + self._bwd(_trainable(head)))
        return ModelFlops(self.per_token, per_scored, self.per_pair, self.per_forward, self.window)

    def _execution_order(self, head) -> list:
        """The linear layers (a peft LoRA layer as one) in the order a forward pass runs them.

        Registration order, except that an attention block's output projection runs after its input projections
        (Phi-3 registers ``o_proj`` before ``qkv_proj``).
        """
        units, skip = [], None
        for name, module in self.model.named_modules():
            if (skip and name.startswith(skip)) or module is head:
                continue
            if hasattr(module, "lora_A") and hasattr(module, "base_layer"):
                skip = name + "."
                units.append((name, module))
            elif isinstance(module, self.linear):
                units.append((name, module))
        parents: dict[str, int] = {}
        for name, _ in units:
            parents.setdefault(name.rsplit(".", 1)[0], len(parents))

        def key(unit):
            parent, _, leaf = unit[0].rpartition(".")
            return parents[parent], leaf in ATTENTION_OUTPUT_NAMES

        return sorted(units, key=key)

    def _bwd(self, needed: bool) -> int:
        return 1 if (needed and self.training) else 0

    def _attention_before(self, name: str) -> None:
        if name.rsplit(".", 1)[-1] in ATTENTION_OUTPUT_NAMES and self.attention_layers < self.layers:
            self._attention()

    def _attention(self) -> None:
        self.per_pair += 4 * self.heads * self.head_dim * (1 + 2 * self._bwd(self.upstream))
        self.attention_layers += 1

    def _plain(self, d_in: int, d_out: int, trainable: bool) -> None:
        self.per_token += 2 * d_in * d_out * (1 + self._bwd(self.upstream) + self._bwd(trainable))
        self.upstream = self.upstream or trainable

    def _lora(self, layer) -> None:
        base = layer.get_base_layer()
        d_in, d_out = base.in_features, base.out_features
        upstream = self.upstream
        self._plain(d_in, d_out, _trainable(base))
        for adapter in layer.active_adapters:
            if adapter not in layer.lora_A:
                continue
            r = layer.r[adapter]
            a, b = _trainable(layer.lora_A[adapter]), _trainable(layer.lora_B[adapter])
            self.per_token += 2 * d_in * r * (1 + self._bwd(upstream) + self._bwd(a))
            self.per_token += 2 * r * d_out * (1 + self._bwd(upstream or a) + self._bwd(b))
            if layer.use_dora.get(adapter):
                self.per_forward += 2 * r * d_in * d_out + 3 * d_in * d_out
                dropout = layer.lora_dropout[adapter]
                if self.training and getattr(dropout, "p", 0) > 0:  # W·dropout(x): a second base product
                    self.per_token += 2 * d_in * d_out * (1 + self._bwd(upstream))
            self.upstream = self.upstream or a or b
