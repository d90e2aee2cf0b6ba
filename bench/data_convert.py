"""Benchmark `azft data convert` (ShareGPT → chat) against a plain json.loads/json.dumps loop.

    python bench/data_convert.py [--size-mb 200] [--repeat 3] [--workdir /tmp/azft-bench]

Generates (once, cached in --workdir) a ShareGPT JSONL of about --size-mb MB: an id, an optional system turn, one to
four human/gpt exchanges with long-tailed lengths and some non-ASCII text. Each mode runs --repeat times in a fresh
interpreter whose peak RSS is sampled; the table shows medians and checks both modes wrote the same bytes.

Modes:
  baseline   json.loads each line, map from/value to role/content, json.dumps (compact, UTF-8) each row
  azft       azft.data.convert.convert_file(--from sharegpt --to chat-completion): the same rows plus the row
             checks, role mapping report and skipped-row report
  azft-auto  the same with --from auto (format detected from the first rows)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

MODES = ("baseline", "azft", "azft-auto")
ROLE = {"human": "user", "gpt": "assistant", "system": "system"}


def generate(path: Path, size_mb: int, seed: int = 0) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from data_check import _vocabulary

    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    ascii_words = [w for w in vocab if w.isascii()]
    target = size_mb * 1_000_000
    written = 0
    tmp = path.with_suffix(".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        while written < target:
            lines = []
            for _ in range(2000):
                n += 1
                turns = []
                if rng.random() < 0.3:
                    turns.append(
                        {
                            "from": "system",
                            "value": "You are a helpful assistant for "
                            + " ".join(rng.choices(ascii_words, k=rng.randint(3, 12)))
                            + ".",
                        }
                    )
                for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
                    for who in ("human", "gpt"):
                        k = min(6000, max(1, int(rng.lognormvariate(3.6 if who == "human" else 4.4, 1.0))))
                        words = vocab if rng.random() < 0.15 else ascii_words
                        turns.append({"from": who, "value": " ".join(rng.choices(words, k=k))})
                lines.append(json.dumps({"id": f"row-{n}", "conversations": turns}, ensure_ascii=False))
            block = "\n".join(lines) + "\n"
            f.write(block)
            written += len(block.encode("utf-8"))
    tmp.replace(path)


def run_baseline(src: str, out: str) -> dict:
    rows = 0
    with open(src, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as o:
        for line in f:
            obj = json.loads(line)
            msgs = [{"role": ROLE[t["from"]], "content": t["value"]} for t in obj["conversations"]]
            o.write(json.dumps({"messages": msgs}, ensure_ascii=False, separators=(",", ":")) + "\n")
            rows += 1
    return {"rows": rows}


def run_azft(src: str, out: str, fmt: str) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from azft.data.convert import convert_file

    r = convert_file(src, out, source_format=fmt, target="chat-completion")
    return {"rows": r.rows, "converted": r.converted, "skipped": r.skipped, "format": r.format}


def child(mode: str, src: str, out: str) -> None:
    t0 = time.perf_counter()
    res = (
        run_baseline(src, out)
        if mode == "baseline"
        else run_azft(src, out, "auto" if mode == "azft-auto" else "sharegpt")
    )
    res["seconds"] = time.perf_counter() - t0
    import resource

    ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    res["cpu_seconds"] = sum(r.ru_utime + r.ru_stime for r in ru)  # worker processes included
    print("RESULT " + json.dumps(res), flush=True)


def measure(mode: str, src: Path, out: Path) -> dict:
    import psutil

    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, "--src", str(src), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            p = psutil.Process(proc.pid)
            while not stop.is_set():
                peak = max(peak, p.memory_info().rss)
                stop.wait(0.01)
        except psutil.NoSuchProcess:
            return

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    stdout, err = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{err[-3000:]}")
    res = json.loads(next(ln for ln in stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])
    res["peak_rss_mb"] = peak / 2**20
    return res


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(8 << 20):
            h.update(b)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/azft-bench")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.src, args.out)
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"sharegpt-{args.size_mb}mb.jsonl"
    if not src.exists():
        t = time.perf_counter()
        generate(src, args.size_mb)
        print(f"generated {src} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    size = src.stat().st_size
    modes = [m for m in args.modes.split(",") if m]
    results: dict[str, list[dict]] = {m: [] for m in modes}
    digests: dict[str, str] = {}
    for i in range(args.repeat):  # interleaved, so drift in machine load hits every mode alike
        for m in modes:
            out = work / f"convert-{m}.jsonl"
            r = measure(m, src, out)
            results[m].append(r)
            digests[m] = sha256(out)
            out.unlink()
            print(
                f"  run {i + 1}/{args.repeat} {m}: {r['seconds']:.2f}s (CPU {r['cpu_seconds']:.2f}s), "
                f"peak {r['peak_rss_mb']:.0f} MB",
                file=sys.stderr,
            )
    med = {
        m: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "cpu_seconds", "peak_rss_mb")}
        for m, rs in results.items()
    }
    print(
        f"\nfile: {src} ({size / 1e6:.0f} MB, {results[modes[0]][-1]['rows']} rows), medians of {args.repeat} runs, "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        f"{'mode':<10} {'seconds':>8} {'MB/s':>8} {'CPU s':>7} {'CPU MB/s':>9} {'peak RSS MB':>12}  {'vs baseline':>11}"
    )
    for m in modes:
        s = med[m]["seconds"]
        vs = f"{med['baseline']['seconds'] / s:.2f}x" if "baseline" in med else "-"
        print(
            f"{m:<10} {s:8.2f} {size / 1e6 / s:8.1f} {med[m]['cpu_seconds']:7.2f} "
            f"{size / 1e6 / med[m]['cpu_seconds']:9.1f} {med[m]['peak_rss_mb']:12.0f}  {vs:>11}"
        )
    same = len(set(digests.values())) == 1
    print(f"\nsame output bytes in every mode: {same} ({', '.join(f'{m}={d[:12]}' for m, d in digests.items())})")
    if "azft" in med:
        rate = size / 1e6 / med["azft"]["seconds"]
        print(
            f"target ShareGPT → chat >= 100 MB/s with the same bytes as the baseline: {rate:.0f} MB/s "
            f"(CPU-time rate {size / 1e6 / med['azft']['cpu_seconds']:.0f} MB/s) -> "
            f"{'met' if rate >= 100 and same else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
