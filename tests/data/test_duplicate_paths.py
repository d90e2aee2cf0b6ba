"""Duplicate detection gives the same answer on its small-file path (pure Python) and its large-file path (numpy)."""

from __future__ import annotations

import random
from array import array

from azft.data import check
from azft.data.scan import Partial


def _parts(seed: int) -> list[Partial]:
    rng = random.Random(seed)
    parts = []
    for _ in range(3):
        p = Partial()
        n = rng.randrange(1, 400)
        p.lines = n + rng.randrange(0, 5)
        p.hashes = array("Q", (rng.randrange(60) for _ in range(n)))
        p.hash_lines = array("Q", sorted(rng.sample(range(1, p.lines + 1), n)))
        parts.append(p)
    return parts


def test_small_and_numpy_paths_agree(monkeypatch):
    for seed in range(20):
        parts = _parts(seed)
        offsets, off = [], 0
        for p in parts:
            offsets.append(off)
            off += p.lines
        small = check._duplicates_small(parts, offsets)
        monkeypatch.setattr(check, "SMALL_DUPLICATE_ROWS", 0)  # force the numpy path
        big = check._duplicates(parts)
        monkeypatch.undo()
        assert small == big
