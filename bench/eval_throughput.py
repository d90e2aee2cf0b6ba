"""Generation throughput: `azft predict`'s decoding (batched, left padding, KV cache) next to a plain
`model.generate` loop over one prompt at a time, same model, same prompts, greedy, in one run.

The prompts are the quickstart's chat rows (examples/data) with their assistant replies removed, rendered with the
recipe's Phi-3 chat format; the model is the bundled tiny-phi3 (or a finished local job's fine-tuned model with
``--job``). Both sides must produce the same text for every prompt; the script says so, or exits 1.

    python bench/eval_throughput.py                      # ~1 minute on 2 CPU cores
    python bench/eval_throughput.py --prompts 32 --max-new-tokens 16 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--job", help="a finished local job (default: the bundled tiny-phi3, untrained)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    from azft.trained.generate import generate, generate_one_by_one, prompt_ids, read_prompts
    from azft.trained.job import TrainedModel, recipe_module

    if args.job:
        tm = TrainedModel.from_job(args.job)
        tok, model = tm.tokenizer(), tm.load()
    else:
        from azft.tiny_phi3 import ensure_tiny_phi3
        from transformers import AutoModelForCausalLM

        src = str(ensure_tiny_phi3())
        tok = recipe_module("ft_model").load_tokenizer(src)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    rows = read_prompts(str(REPO / "examples" / "data" / "chat_train.jsonl"), "chat-completion")[: args.prompts]
    ids = [prompt_ids(tok, r.messages) for r in rows]

    def timed(fn):
        times, out = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times), out

    loop_s, loop = timed(lambda: generate_one_by_one(model, tok, ids, max_new_tokens=args.max_new_tokens))
    azft_s, ours = timed(
        lambda: generate(model, tok, ids, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    )
    same = [a.text for a in loop] == [b.text for b in ours]
    n = len(ids)
    res = {
        "prompts": n,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "tokens_generated": sum(g.tokens for g in ours),
        "torch_threads": torch.get_num_threads(),
        "one_by_one_generations_per_s": n / loop_s,
        "azft_generations_per_s": n / azft_s,
        "speedup": loop_s / azft_s,
        "same_outputs": same,
    }
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(
            f"{n} prompts, {args.max_new_tokens} new tokens max, greedy, {res['tokens_generated']} tokens, "
            f"{res['torch_threads']} threads, median of {args.repeats}"
        )
        print(f"  model.generate, one prompt at a time: {res['one_by_one_generations_per_s']:8.2f} generations/s")
        print(f"  azft predict (batch {args.batch_size}, KV cache): {res['azft_generations_per_s']:8.2f} generations/s")
        print(f"  speedup {res['speedup']:.2f}x (target >= 3x); same outputs: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
