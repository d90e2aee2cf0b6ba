"""Benchmark `azft data check` against a cookbook-style checker and a parse-only floor.

    python bench/data_check.py [--size-mb 200] [--repeat 3] [--workdir /tmp/azft-bench] [--modes ...]

Generates (once, cached in --workdir) a chat JSONL of about --size-mb MB with long-tailed message lengths and some
non-ASCII text, and a 32k-token byte-level BPE tokenizer with Phi-3's special tokens and chat template trained on
it. Each mode then runs --repeat times, each time in a fresh interpreter whose whole process tree (workers
included) is sampled for peak RSS; the table shows medians.

Modes:
  floor            orjson.loads over every line, nothing else (the parse-only floor)
  cookbook-format  the "Data preparation and analysis for chat model fine-tuning" notebook's format checks and
                   statistics without token counts: whole file in memory, json.loads per line, Python loops
  cookbook         the same notebook with its token counting: one tokenizer call per message value
  azft-format      azft.data.check_file without a tokenizer (format checks + estimated token statistics)
  azft-exact       azft.data.check_file with the tokenizer: chat template applied, exact counts
  azft-format-bad  azft-format on a copy of the file with 1% bad rows (the baseline of the two modes below)
  azft-all         the same file, every problem streamed as JSON lines to a file (`data check --output jsonl`)
  azft-split       the same file split into valid and invalid rows (`--write-valid/--write-invalid`)

    python bench/data_check.py --modes azft-format-bad,azft-all,azft-split
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

MODES = (
    "floor",
    "cookbook-format",
    "cookbook",
    "azft-format",
    "azft-exact",
    "azft-format-bad",
    "azft-all",
    "azft-split",
)
BAD_MODES = ("azft-format-bad", "azft-all", "azft-split")

SPECIALS = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>", "<|user|>"]

# ------------------------------------------------------------------------------------------------ data


def _vocabulary(rng: random.Random) -> list[str]:
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    words = set()
    while len(words) < 6000:
        n = max(1, int(rng.lognormvariate(1.5, 0.5)))
        words.add("".join(rng.choices(letters, weights, k=n)))
    words = sorted(words)
    words += [
        "café",
        "naïve",
        "Grüße",
        "München",
        "façade",
        "日本語",
        "数据",
        "検査",
        "données",
        "привет",
        "мир",
        "🙂",
        "Ελληνικά",
        "مرحبا",
        "한국어",
        "€100",
        "½",
        "—",
    ]
    return words


def generate(path: Path, size_mb: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    ascii_words = [w for w in vocab if w.isascii()]
    target = size_mb * 1_000_000
    written = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        while written < target:
            lines = []
            for _ in range(2000):
                msgs = []
                if rng.random() < 0.5:
                    msgs.append(
                        {
                            "role": "system",
                            "content": "You are a helpful assistant for "
                            + " ".join(rng.choices(ascii_words, k=rng.randint(3, 12)))
                            + ".",
                        }
                    )
                for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
                    for role in ("user", "assistant"):
                        n = min(6000, max(1, int(rng.lognormvariate(3.6 if role == "user" else 4.4, 1.0))))
                        words = vocab if rng.random() < 0.15 else ascii_words
                        msgs.append({"role": role, "content": " ".join(rng.choices(words, k=n))})
                lines.append(json.dumps({"messages": msgs}, ensure_ascii=False))
            block = "\n".join(lines) + "\n"
            f.write(block)
            written += len(block.encode("utf-8"))
    tmp.replace(path)


def make_bad_copy(src: Path, dst: Path, every: int = 100) -> int:
    """Copy ``src`` with every ``every``-th line replaced by a bad row of one of several kinds; returns how many."""
    bad = [
        b'{"messages": [{"role": "user", "content": "cut off',
        b'{"messages": [{"role": "user", "content": "no answer"}]}',
        b'{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}',
        b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}',
        b"",
        b'["not", "an", "object"]',
    ]
    n = 0
    tmp = dst.with_suffix(".tmp")
    with open(src, "rb") as f, open(tmp, "wb") as out:
        for i, line in enumerate(f, 1):
            if i % every == 0:
                out.write(bad[n % len(bad)] + b"\n")
                n += 1
            else:
                out.write(line)
    tmp.replace(dst)
    return n


def build_tokenizer(out: Path, corpus: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def texts():
        with open(corpus, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= 3000:
                    break
                for m in json.loads(line)["messages"]:
                    yield m["content"]

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=32000,
        special_tokens=SPECIALS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts(), trainer=trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from azft.tiny_phi3 import CHAT_TEMPLATE as PHI3_TEMPLATE

    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<unk>",
                "pad_token": "<|endoftext|>",
                "chat_template": PHI3_TEMPLATE,
            }
        )
    )


# ------------------------------------------------------------------------------------------------ modes


def run_floor(path: str, tokenizer: str) -> dict:
    import orjson

    rows = 0
    with open(path, "rb") as f:
        carry = b""
        while chunk := f.read(8 << 20):
            data = carry + chunk
            cut = data.rfind(b"\n")
            carry, data = data[cut + 1 :], data[:cut]
            for line in data.split(b"\n"):
                orjson.loads(line)
                rows += 1
        if carry.strip():
            orjson.loads(carry)
            rows += 1
    return {"rows": rows}


def run_cookbook(path: str, tokenizer: str, with_tokens: bool = True) -> dict:
    """Written the way the cookbook notebook does it (whole file in memory, Python loops, a tokenizer call per
    message value), with the model's tokenizer in place of tiktoken."""
    from collections import defaultdict

    import numpy as np

    with open(path, "r", encoding="utf-8") as f:
        dataset = [json.loads(line) for line in f]

    format_errors = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                format_errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1

    out = {"rows": len(dataset), "format_errors": sum(format_errors.values())}
    n_messages = []
    convo_lens = []
    assistant_message_lens = []
    if with_tokens:
        from transformers import AutoTokenizer

        encoding = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)

        def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):
            num_tokens = 0
            for message in messages:
                num_tokens += tokens_per_message
                for key, value in message.items():
                    num_tokens += len(encoding.encode(value, add_special_tokens=False))
                    if key == "name":
                        num_tokens += tokens_per_name
            num_tokens += 3
            return num_tokens

        def num_assistant_tokens_from_messages(messages):
            num_tokens = 0
            for message in messages:
                if message["role"] == "assistant":
                    num_tokens += len(encoding.encode(message["content"], add_special_tokens=False))
            return num_tokens
    else:

        def num_tokens_from_messages(messages):
            return sum(len(m["content"]) // 4 + 3 for m in messages) + 3

        def num_assistant_tokens_from_messages(messages):
            return sum(len(m["content"]) // 4 for m in messages if m["role"] == "assistant")

    n_missing_system = n_missing_user = 0
    for ex in dataset:
        messages = ex["messages"]
        if not any(message["role"] == "system" for message in messages):
            n_missing_system += 1
        if not any(message["role"] == "user" for message in messages):
            n_missing_user += 1
        n_messages.append(len(messages))
        convo_lens.append(num_tokens_from_messages(messages))
        assistant_message_lens.append(num_assistant_tokens_from_messages(messages))
    for values in (n_messages, convo_lens, assistant_message_lens):
        np.min(values), np.max(values), np.mean(values), np.median(values)
        np.quantile(values, 0.1), np.quantile(values, 0.9)
    n_too_long = sum(length > 4096 for length in convo_lens)
    out.update(tokens=int(sum(convo_lens)), assistant_tokens=int(sum(assistant_message_lens)), too_long=n_too_long)
    return out


def run_azft(path: str, tokenizer: str | None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from azft.data import check_file

    r = check_file(path, "chat-completion", tokenizer=tokenizer, max_tokens=4096)
    s = r.stats
    return {
        "rows": s.rows,
        "errors": r.error_total,
        "tokens": s.tokens.total,
        "assistant_tokens": s.output_tokens.total,
        "too_long": s.over_context_rows,
        "exact": s.token_count_exact,
        "workers": s.workers,
    }


def run_azft_stream(path: str, split: bool) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import orjson

    from azft.data import check_file

    work = Path(path).parent
    n = 0
    if split:
        r = check_file(
            path,
            "chat-completion",
            max_tokens=4096,
            write_valid=work / "split.valid.jsonl",
            write_invalid=work / "split.invalid.jsonl",
        )
    else:
        with open(work / "all.problems.jsonl", "wb") as out:

            def on_problem(p) -> None:
                nonlocal n
                n += 1
                out.write(orjson.dumps({"type": "problem", **p.to_dict()}) + b"\n")

            r = check_file(path, "chat-completion", max_tokens=4096, on_problem=on_problem)
    s = r.stats
    res = {"rows": s.rows, "errors": r.error_total, "warnings": r.warning_total, "workers": s.workers}
    if split:
        res["outputs"] = {k: v["rows"] for k, v in r.outputs.items()}
    else:
        res["streamed"] = n
    return res


def child(mode: str, path: str, tokenizer: str) -> None:
    t0 = time.perf_counter()
    if mode == "floor":
        out = run_floor(path, tokenizer)
    elif mode == "cookbook-format":
        out = run_cookbook(path, tokenizer, with_tokens=False)
    elif mode == "cookbook":
        out = run_cookbook(path, tokenizer)
    elif mode == "azft-format":
        out = run_azft(path, None)
    elif mode == "azft-exact":
        out = run_azft(path, tokenizer)
    elif mode == "azft-format-bad":
        out = run_azft(path, None)
    elif mode in ("azft-all", "azft-split"):
        out = run_azft_stream(path, mode == "azft-split")
    else:
        raise SystemExit(f"unknown mode {mode}")
    out["seconds"] = time.perf_counter() - t0
    import resource

    ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    out["cpu_seconds"] = sum(r.ru_utime + r.ru_stime for r in ru)
    print("RESULT " + json.dumps(out), flush=True)


# ------------------------------------------------------------------------------------------------ driver


def measure(mode: str, path: Path, tokenizer: Path) -> dict:
    """Run one mode in a fresh interpreter; sample the RSS of its whole process tree every 10 ms."""
    import psutil

    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, "--file", str(path), "--tokenizer", str(tokenizer)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            try:
                procs = [root] + root.children(recursive=True)
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                peak = max(peak, rss)
            except psutil.NoSuchProcess:
                return
            stop.wait(0.01)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{err[-3000:]}")
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    res = json.loads(line[len("RESULT ") :])
    res["peak_rss_mb"] = peak / 2**20
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/azft-bench")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--json", action="store_true", help="print the medians as JSON too")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.file, args.tokenizer)
        return

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"chat-{args.size_mb}mb.jsonl"
    tok = work / "tokenizer-32k"
    if not data.exists():
        t = time.perf_counter()
        generate(data, args.size_mb)
        print(f"generated {data} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    if not (tok / "tokenizer.json").exists():
        t = time.perf_counter()
        build_tokenizer(tok, data)
        print(f"trained {tok} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    modes = [m for m in args.modes.split(",") if m]
    bad_data = work / f"chat-{args.size_mb}mb-bad1.jsonl"
    if any(m in BAD_MODES for m in modes) and not bad_data.exists():
        n = make_bad_copy(data, bad_data)
        print(f"wrote {bad_data} ({n} bad rows)", file=sys.stderr)
    size = data.stat().st_size
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for i in range(args.repeat):  # interleave modes so drift in machine load hits all of them alike
        for m in modes:
            r = measure(m, bad_data if m in BAD_MODES else data, tok)
            results[m].append(r)
            print(
                f"  run {i + 1}/{args.repeat} {m}: {r['seconds']:.2f}s (CPU {r['cpu_seconds']:.2f}s), "
                f"peak {r['peak_rss_mb']:.0f} MB",
                file=sys.stderr,
            )

    med = {
        m: {
            "seconds": statistics.median(r["seconds"] for r in rs),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in rs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
            "last": rs[-1],
        }
        for m, rs in results.items()
    }
    print(
        f"\nfile: {data} ({size / 1e6:.0f} MB, {med[modes[0]]['last'].get('rows', '?')} rows), "
        f"{os.cpu_count()} cores, medians of {args.repeat} runs\n"
    )
    load = os.getloadavg()[0]
    print(
        f"load average at the end: {load:.1f} (other work on the machine slows wall-clock times; CPU seconds "
        "are the process tree's user+system time)\n"
    )
    print(
        f"{'mode':<16} {'seconds':>8} {'MB/s':>8} {'CPU s':>7} {'peak RSS MB':>12}  {'vs cookbook':>11}  "
        f"{'vs floor':>8}"
    )
    for m in modes:
        s = med[m]["seconds"]
        vs_cb = f"{med['cookbook']['seconds'] / s:.2f}x" if "cookbook" in med else "-"
        vs_fl = f"{med['floor']['seconds'] / s:.2f}x" if "floor" in med else "-"
        print(
            f"{m:<16} {s:8.2f} {size / 1e6 / s:8.1f} {med[m]['cpu_seconds']:7.2f} {med[m]['peak_rss_mb']:12.0f}  "
            f"{vs_cb:>11}  {vs_fl:>8}"
        )
    print()
    for m in modes:
        print(f"{m}: {json.dumps(med[m]['last'])}")
    if "azft-format" in med:
        f = med["azft-format"]
        ok = size / 1e6 / f["seconds"] >= 150 and f["peak_rss_mb"] <= 300
        print(
            f"\ntarget format+stats >= 150 MB/s and peak RSS <= 300 MB: "
            f"{size / 1e6 / f['seconds']:.0f} MB/s, {f['peak_rss_mb']:.0f} MB -> {'met' if ok else 'NOT met'}"
        )
    for m in ("azft-all", "azft-split"):
        if m in med:
            f = med[m]
            rate = size / 1e6 / f["seconds"]
            base = med.get("azft-format-bad")
            rss = (
                f" vs {base['peak_rss_mb']:.0f} MB for azft-format-bad (ratio {f['peak_rss_mb'] / base['peak_rss_mb']:.2f})"
                if base
                else ""
            )
            print(
                f"target {m} >= 100 MB/s on the file with 1% bad rows, peak RSS unchanged: {rate:.0f} MB/s, "
                f"peak {f['peak_rss_mb']:.0f} MB{rss} -> {'met' if rate >= 100 else 'NOT met'}"
            )
    if "azft-exact" in med and "cookbook" in med:
        ratio = med["cookbook"]["seconds"] / med["azft-exact"]["seconds"]
        print(
            f"target exact token counting >= 3x the cookbook-style baseline: {ratio:.2f}x -> "
            f"{'met' if ratio >= 3 else 'NOT met'}"
        )
    if args.json:
        print(json.dumps({m: {k: v for k, v in d.items()} for m, d in med.items()}))


if __name__ == "__main__":
    main()
