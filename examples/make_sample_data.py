"""Regenerate the bundled sample data (deterministic): `python examples/make_sample_data.py`.

A small "support bot" chat dataset with a learnable pattern, so a tiny model's loss visibly goes down, and the
same rows in ShareGPT form (`from`/`value` turns, the way many public datasets come) for `data.format: sharegpt`.
"""

import json
import random
from pathlib import Path

PRODUCTS = ["router", "printer", "laptop", "phone", "camera", "speaker", "monitor", "keyboard", "tablet", "watch"]
ISSUES = {
    "won't turn on": "Hold the power button for 10 seconds, then plug it into a different outlet.",
    "is slow": "Restart it, then install the latest update from Settings > Update.",
    "lost wifi": "Forget the network, reconnect, and restart your router if it still fails.",
    "makes noise": "Check for loose parts and make sure the vents are not blocked.",
    "shows an error": "Write down the error code and reset it to factory settings from the menu.",
    "battery drains": "Lower the screen brightness and turn off background apps.",
}
SYSTEM = "You are Contoso's support assistant. Answer in one or two short sentences."


def example(rng: random.Random) -> dict:
    product = rng.choice(PRODUCTS)
    issue, fix = rng.choice(list(ISSUES.items()))
    messages = [{"role": "system", "content": SYSTEM}] if rng.random() < 0.7 else []
    order = rng.randrange(10000, 99999)
    messages.append({"role": "user", "content": f"My {product} {issue} (order {order}). What should I do?"})
    messages.append({"role": "assistant", "content": f"Sorry your {product} {issue}. {fix}"})
    if rng.random() < 0.25:
        messages.append({"role": "user", "content": "Thanks! Anything else?"})
        messages.append({"role": "assistant", "content": f"If your {product} still {issue}, contact Contoso support."})
    return {"messages": messages}


SHAREGPT_SPEAKER = {"system": "system", "user": "human", "assistant": "gpt"}


def sharegpt(row: dict, i: int) -> dict:
    return {
        "id": f"contoso-{i}",
        "conversations": [{"from": SHAREGPT_SPEAKER[m["role"]], "value": m["content"]} for m in row["messages"]],
    }


def main() -> None:
    out = Path(__file__).parent / "data"
    out.mkdir(exist_ok=True)
    rng = random.Random(7)
    for name, n in (("chat_train.jsonl", 400), ("chat_val.jsonl", 40)):
        rows = [example(rng) for _ in range(n)]
        with open(out / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        with open(out / name.replace(".jsonl", ".sharegpt.jsonl"), "w", encoding="utf-8") as f:
            for i, row in enumerate(rows):
                f.write(json.dumps(sharegpt(row, i), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
