"""Loading large and hostile specs: azft's bounded loader against a plain round-trip YAML load of the same text.

    python bench/spec_load.py [--mb 10]

Prints, for each shape of a ~10 MB spec (one long description; many tags, refused at the value limit) and for a
"billion laughs" document, the time azft takes (load + secret checks + validation) and the ratio against a
ruamel.yaml round-trip load of the same text measured in the same run (the loader azft used before). The laughs
case has no baseline (it grows without bound); it prints azft's time to refuse it.
"""

from __future__ import annotations

import argparse
import time


def _azft(text: str) -> float:
    from azft.errors import SpecError
    from azft.spec import parse_spec_text

    t = time.perf_counter()
    try:
        parse_spec_text(text, file="bench.yaml", env={})
    except SpecError:
        pass
    return time.perf_counter() - t


def _baseline(text: str) -> float:
    from ruamel.yaml import YAML

    t = time.perf_counter()
    YAML(typ="rt").load(text)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=10.0)
    size = int(ap.parse_args().mb * 1_000_000)
    head = "name: bench\nmodel: tiny-phi3\ndata: {train: train.jsonl}\n"
    words = "lorem ipsum dolor sit amet, consectetur adipiscing elit "
    cases = {
        "long description": head + "description: " + words * (size // len(words)) + "\n",
        "many tags": head + "tags:\n" + "".join(f"  k{i}: value {i}\n" for i in range(size // 20)),
    }
    _azft(head)  # imports
    for name, text in cases.items():
        ours = min(_azft(text) for _ in range(2))
        base = _baseline(text)
        print(
            f"{name:18s} {len(text) / 1e6:5.1f} MB  azft {ours:6.3f} s  round-trip load {base:7.3f} s  "
            f"ratio {ours / base:.3f}"
        )
    laughs = (
        head
        + "x:\n  a0: &a0 [lol]\n"
        + "".join(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 12))
    )
    print(
        f"{'billion laughs':18s} {len(laughs) / 1e3:5.1f} kB  azft refuses in {_azft(laughs):.3f} s "
        "(unbounded without the limits)"
    )


if __name__ == "__main__":
    main()
