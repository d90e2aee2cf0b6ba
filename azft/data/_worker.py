"""Worker process for large files. ``python -m azft.data._worker`` reads a pickled (ScanConfig, start, end) on stdin
and writes the pickled Partial on stdout; ``python -m azft.data._worker convert`` reads a pickled conversion job
and writes its pickled result. A plain subprocess rather than multiprocessing, so the caller's ``__main__`` is never
re-imported and nothing is forked from a process that may hold threads."""

from __future__ import annotations

import os
import pickle
import sys


def main() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the worker processes already fill the cores
    if sys.argv[1:] == ["convert"]:
        from azft.data.convert import convert_range

        result: object = convert_range(pickle.load(sys.stdin.buffer))
    else:
        from azft.data.scan import scan_range

        cfg, start, end = pickle.load(sys.stdin.buffer)
        cfg.parallel_tokenizer = False
        result = scan_range(cfg, start, end)
    pickle.dump(result, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
