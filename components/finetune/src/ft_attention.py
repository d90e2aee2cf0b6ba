"""Attention over packed rows without a mask: each example attends causally to itself only, nothing else computed.

Packed rows carry position ids that restart at 0 for every example. Flash-attention kernels (CUDA) turn those into
variable-length attention; elsewhere transformers builds a dense block-diagonal mask, and the attention kernel
then still computes every cross-example block only to mask it out. ``packed_sdpa`` instead slices each row at its
position-id restarts and runs ``scaled_dot_product_attention(is_causal=True)`` per example: the same result as the
block-diagonal mask (the packing test checks it), with no work on blocks that are masked anyway.

Registered with transformers' ``AttentionInterface`` / ``AttentionMaskInterface`` under ``NAME``; batches that do
carry a padding mask fall back to the stock SDPA path.
"""

from __future__ import annotations

NAME = "azft_packed_sdpa"


def _segments(position_ids_row) -> list[tuple[int, int]]:
    starts = (position_ids_row == 0).nonzero().flatten().tolist()
    n = int(position_ids_row.shape[0])
    if not starts or starts[0] != 0:
        starts = [0] + starts
    bounds = starts + [n]
    return [(s, e) for s, e in zip(bounds, bounds[1:]) if e > s]


def packed_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                          sliding_window=None, position_ids=None, **kwargs):
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is not None or position_ids is None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      sliding_window=sliding_window, **kwargs)
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:  # grouped-query attention: share each key/value head across its query heads
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    if position_ids.shape[0] != query.shape[0]:
        position_ids = position_ids.expand(query.shape[0], -1)
    rows = []
    for b in range(query.shape[0]):
        parts = []
        for s, e in _segments(position_ids[b]):
            q, k, v = query[b : b + 1, :, s:e], key[b : b + 1, :, s:e], value[b : b + 1, :, s:e]
            mask, causal = None, True
            if sliding_window and e - s > sliding_window:
                i = torch.arange(e - s, device=q.device)
                mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < sliding_window)
                causal = False
            parts.append(torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal, scale=scaling))
        rows.append(torch.cat(parts, dim=2) if len(parts) > 1 else parts[0])
    out = torch.cat(rows, dim=0) if len(rows) > 1 else rows[0]
    return out.transpose(1, 2).contiguous(), None


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
