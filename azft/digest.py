"""The content hash of a data file: what job names, upload paths and the plan all key on (one definition)."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike[str], chunk: int = 4 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk``-byte pieces (constant memory for large files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
