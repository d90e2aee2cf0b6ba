"""Attention over packed rows without a mask: each example attends causally to itself only, nothing else computed.

Packed rows carry position ids that restart at 0 for every example. Flash-attention kernels (CUDA) turn those into
variable-length attention; elsewhere transformers builds a dense block-diagonal mask, and the attention kernel
then still computes every cross-example block only to mask it out. ``packed_sdpa`` instead lays the examples out
one per row (gathered at their position-id restarts) and runs ``scaled_dot_product_attention(is_causal=True)`` over
them: the same result as the block-diagonal mask (the packing test checks it), with no work on cross-example
blocks. Only the attention sees that per-example layout; the linear layers, which do most of the arithmetic, keep
running on the packed tokens without padding.

The examples are sorted by length and split into a few groups, each padded only to its own longest example, one
kernel call per group: one call over every example padded to the batch's longest computed 2.2× (short chat) to
2.9× (a long tail of replies) the causal pairs the examples have, and one call per example sliced out of the row
cost more on CPU in per-call overhead and slice gradients than the attention itself. The groups are chosen to
minimise the padded pairs plus a fixed cost per call (``GROUP_COST``); the layout is computed once per batch and
shared by every layer.

On a CPU the kernel depends on the precision. In half precision, groups up to ``MATMUL_MAX`` tokens run as two
half-precision matmuls around a softmax (``_matmul_attention``): faster than the CPU flash kernel at these lengths,
for the (query, key) probabilities it keeps for backward. Longer groups, and fp32 training, use the flash kernel in
fp32 (its bf16 backward pass takes about twice as long as its fp32 one at 100-160 tokens). On a GPU the flash kernel
runs in the compute dtype.

Registered with transformers' ``AttentionInterface`` / ``AttentionMaskInterface`` under ``NAME``; batches that do
carry a padding mask fall back to the stock SDPA path.
"""

from __future__ import annotations

NAME = "azft_packed_sdpa"

#: the cost of one more kernel call, in (query, key) pairs: a group of examples gets its own call only when that
#: saves at least this much padded work
GROUP_COST = 16384

#: on CPU in half precision, groups of examples up to this many tokens take the matmul path (``_matmul_attention``):
#: faster than the fp32 flash kernel there, and its per-(query, key) probabilities stay small
MATMUL_MAX = 512

#: each group's padded length is rounded up to a multiple of this: a run's attention matmuls then come in a few dozen
#: shapes rather than a new one nearly every batch (on CPU oneDNN builds, and keeps, a kernel per shape; measured on
#: the bench's short mix: about a quarter less resident memory, speed within the noise), for a few percent more pairs
LENGTH_MULTIPLE = 16

_cache: list = [None, None]  # (position_ids, layout) of the last batch: every layer of a forward shares it


def _groups(lengths: list[int]) -> list[int]:
    """Split examples sorted longest first into consecutive groups; the size of each group, minimising
    ``sum(examples × longest²) + GROUP_COST × groups`` (the padded causal work, plus the cost of each call)."""
    n = len(lengths)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j examples
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            c = best[i] + (j - i) * lengths[i] ** 2 + GROUP_COST
            if c < best[j]:
                best[j], cut[j] = c, i
    sizes, j = [], n
    while j > 0:
        sizes.append(j - cut[j])
        j = cut[j]
    return sizes[::-1]


def _layout(position_ids, n_rows: int, width: int):
    """Where each packed token goes in the grouped per-example layout: (flat index of every token, [(examples,
    longest)] per group, total positions). An example starts wherever a position id is 0 (and at the start of each
    row); each example's tokens keep their order at the left of its own padded row."""
    import torch

    pos = position_ids.expand(n_rows, -1).reshape(-1)
    starts = pos == 0
    starts[::width] = True  # every row begins an example
    example = torch.cumsum(starts, 0) - 1
    first = starts.nonzero().flatten()
    offset = torch.arange(pos.numel(), device=pos.device) - first[example]
    lengths = torch.diff(first, append=first.new_tensor([pos.numel()])).tolist()
    order = sorted(range(len(lengths)), key=lambda e: -lengths[e])
    base = [0] * len(lengths)
    groups, at, k = [], 0, 0
    for size in _groups([lengths[e] for e in order]):
        longest = -(-lengths[order[k]] // LENGTH_MULTIPLE) * LENGTH_MULTIPLE
        for r, e in enumerate(order[k : k + size]):
            base[e] = at + r * longest
        groups.append((size, longest))
        at += size * longest
        k += size
    where = torch.tensor(base, device=pos.device)[example] + offset
    return where, groups, at


def packed_sdpa_attention(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling=None,
    sliding_window=None,
    position_ids=None,
    **kwargs,
):
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None or position_ids is None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            sliding_window=sliding_window,
            **kwargs,
        )
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:  # grouped-query attention: share each key/value head across its query heads
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    rows, heads, width, dim = query.shape
    if _cache[0] is not position_ids:
        _cache[:] = position_ids, _layout(position_ids, rows, width)
    where, groups, total = _cache[1]
    cpu = query.device.type == "cpu"

    def to_examples(t):  # [rows, heads, width, dim] -> one [examples, heads, longest, dim] tensor per group
        tokens = t.transpose(1, 2).reshape(rows * width, heads, t.shape[-1])
        padded = tokens.new_zeros(total, heads, t.shape[-1])
        padded[where] = tokens  # index_put keeps only the index for backward (index_copy would keep the tokens)
        parts = padded.split([n * longest for n, longest in groups])
        return [p.view(n, longest, heads, -1).transpose(1, 2) for p, (n, longest) in zip(parts, groups)]

    outs = []
    with torch.autocast(query.device.type, enabled=False):  # each path below picks its own dtypes
        for (n, longest), q, k, v in zip(groups, to_examples(query), to_examples(key), to_examples(value)):
            if cpu and query.dtype != torch.float32 and longest <= MATMUL_MAX and not dropout:
                o = _matmul_attention(q, k, v, scaling, sliding_window)
            else:
                o = _kernel_attention(q, k, v, scaling, sliding_window, dropout, cpu)
            outs.append(o.to(query.dtype).transpose(1, 2).reshape(n * longest, heads, -1))
    out = (torch.cat(outs) if len(outs) > 1 else outs[0]).index_select(0, where)
    return out.view(rows, width, heads, -1), None


def _causal(longest: int, sliding_window, device):
    """The causal (and sliding-window) mask of one group: True where a query may see a key."""
    import torch

    i = torch.arange(longest, device=device)
    mask = i[None, :] <= i[:, None]
    if sliding_window and longest > sliding_window:
        mask &= i[:, None] - i[None, :] < sliding_window
    return mask


def _kernel_attention(q, k, v, scaling, sliding_window, dropout, cpu: bool):
    """``scaled_dot_product_attention`` (flash kernels): in fp32 on CPU, where its bf16 backward is about twice as
    slow at these lengths."""
    import torch

    if cpu:
        q, k, v = q.float(), k.float(), v.float()
    longest = q.shape[2]
    mask, causal = None, True
    if sliding_window and longest > sliding_window:
        mask, causal = _causal(longest, sliding_window, q.device), False
    # right padding under a causal mask: no real query sees a padding key; padded queries are dropped by the caller
    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal, scale=scaling
    )


def _matmul_attention(q, k, v, scaling, sliding_window):
    """Attention as two half-precision matmuls around a softmax: on CPU faster than the fp32 flash kernel for groups
    of examples up to ``MATMUL_MAX`` tokens, at the cost of keeping the (query, key) probabilities for backward.

    The softmax takes the half-precision scores as they are: PyTorch's CPU kernel accumulates in fp32 and rounds only
    its output, the probabilities the second matmul reads in half precision anyway (transformers' eager attention
    casts the scores to fp32 and back instead: two more passes over the largest tensors forward, two backward). The
    causal mask is written into the scores outside autograd: the softmax's gradient is already zero wherever its
    probability is, so masking the gradient too would be a pass that changes nothing. Measured on CPU, forward and
    backward of 2 × 512 or 16 × 96 tokens: 1.3-2.6× faster than with the fp32 casts, gradients equally close to the
    fp32 reference (within 0.6%)."""
    import torch

    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    scores = torch.matmul(q * scale, k.transpose(-1, -2))
    with torch.no_grad():  # the matmul's backward reads its inputs, not its output: masking in place is safe
        scores.masked_fill_(~_causal(q.shape[2], sliding_window, q.device), float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def packed_mask(*args, **kwargs):
    """No mask for packed batches (the attention splits them itself); the stock SDPA mask when padding exists."""
    if kwargs.get("attention_mask") is None:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, **kwargs)


def register() -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, packed_sdpa_attention)
    AttentionMaskInterface.register(NAME, packed_mask)
    return NAME
