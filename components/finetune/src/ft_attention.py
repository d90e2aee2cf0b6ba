"""Attention over packed rows without a mask: each example attends causally to itself only, nothing else computed.

Packed rows carry position ids that restart at 0 for every example. Flash-attention kernels (CUDA) turn those into
variable-length attention; elsewhere transformers builds a dense block-diagonal mask, and the attention kernel
then still computes every cross-example block only to mask it out. ``packed_sdpa`` instead lays the examples out
one per row (gathered at their position-id restarts) and runs one ``scaled_dot_product_attention(is_causal=True)``
over them: the same result as the block-diagonal mask (the packing test checks it), with no work on cross-example
blocks. Only the attention sees that per-example layout; the linear layers, which do most of the arithmetic, keep
running on the packed tokens without padding. (One kernel call per layer: calling the kernel once per example,
sliced out of the row, cost more on CPU in per-call overhead and slice gradients than the attention itself.)

Registered with transformers' ``AttentionInterface`` / ``AttentionMaskInterface`` under ``NAME``; batches that do
carry a padding mask fall back to the stock SDPA path.
"""

from __future__ import annotations

NAME = "azft_packed_sdpa"


def _padded_layout(position_ids, n_rows: int, width: int):
    """Where each packed token goes in a [examples, longest example] layout: flat indices, examples, longest.

    An example starts wherever a position id is 0 (and at the start of each row); the tokens of an example keep
    their order, so each example's tokens land at the left of its own padded row.
    """
    import torch

    pos = position_ids.expand(n_rows, -1).reshape(-1)
    starts = pos == 0
    starts[::width] = True  # every row begins an example
    example = torch.cumsum(starts, 0) - 1
    first = starts.nonzero().flatten()  # the index of each example's first token
    offset = torch.arange(pos.numel(), device=pos.device) - first[example]
    longest = int(offset.max()) + 1
    return example * longest + offset, int(first.numel()), longest


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
    where, n_examples, longest = _padded_layout(position_ids, rows, width)

    def to_examples(t):  # [rows, heads, width, dim] -> [examples, heads, longest, dim], zeros after each example
        tokens = t.transpose(1, 2).reshape(rows * width, heads, t.shape[-1])
        padded = tokens.new_zeros(n_examples * longest, heads, t.shape[-1]).index_copy(0, where, tokens)
        return padded.view(n_examples, longest, heads, -1).transpose(1, 2)

    mask, causal = None, True
    if sliding_window and longest > sliding_window:
        i = torch.arange(longest, device=query.device)
        mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < sliding_window)
        causal = False
    # right padding under a causal mask: no real query ever sees a padding key, and padded queries are dropped below
    out = torch.nn.functional.scaled_dot_product_attention(
        to_examples(query),
        to_examples(key),
        to_examples(value),
        attn_mask=mask,
        dropout_p=dropout,
        is_causal=causal,
        scale=scaling,
    )
    out = out.transpose(1, 2).reshape(n_examples * longest, heads, -1).index_select(0, where)
    return out.view(rows, width, heads, -1), None


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
