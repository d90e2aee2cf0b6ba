"""`azft data convert`: Alpaca, ShareGPT, prompt/completion, OpenAI chat and Hugging Face datasets on disk → Azure's
chat or prompt/completion JSONL, with the report a user reads (mapping, skipped rows with their lines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from azft.cli_data import data
from azft.data import check_file, convert
from azft.data.convert import convert_file


def run(*args):
    return CliRunner().invoke(data, [str(a) for a in args])


def jsonl(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def passes_check(path: Path, task: str) -> None:
    rep = check_file(path, task)
    assert rep.ok, [e.render() for e in rep.errors]


# ------------------------------------------------------------------------------------------------ samples

ALPACA = [
    {
        "instruction": "Give three tips for staying healthy.",
        "input": "",
        "output": "1. Eat a balanced diet.\n2. Exercise.\n3. Sleep well.",
    },
    {"instruction": "Translate to French.", "input": "Good morning, Zoë!", "output": "Bonjour, Zoë !"},
    {
        "instruction": "Summarize",
        "input": "東京は日本の首都です。",
        "output": "東京は首都。",
        "system": "Answer briefly.",
    },
    {
        "instruction": "And the capital of Italy?",
        "input": "",
        "output": "Rome.",
        "history": [["Capital of France?", "Paris."]],
    },
    {"instruction": "Write nothing", "input": "", "output": ""},  # line 5: empty answer
]

SHAREGPT = [
    {
        "id": "a1",
        "conversations": [
            {"from": "system", "value": "You are terse."},
            {"from": "human", "value": "Hi 👋"},
            {"from": "gpt", "value": "Hello."},
        ],
    },
    {
        "id": "a2",
        "system": "Speak German.",
        "conversations": [
            {"from": "human", "value": "Wie geht's?"},
            {"from": "gpt", "value": "Gut, danke!"},
            {"from": "human", "value": "Und dir?"},
            {"from": "gpt", "value": "Auch gut."},
        ],
    },
    {"id": "a3", "conversations": [{"from": "human", "value": "q"}, {"from": "bard", "value": "a"}]},  # line 3
    {
        "id": "a4",
        "conversations": [
            {"from": "human", "value": "weather?"},
            {"from": "function_call", "value": '{"name": "get_weather"}'},
            {"from": "observation", "value": '{"temp": 3}'},
            {"from": "gpt", "value": "Cold."},
        ],
    },  # line 4: tool turns
    {"id": "a5", "conversations": [{"from": "human", "value": "   "}, {"from": "gpt", "value": "?"}]},  # line 5
    {"id": "a6", "conversations": [{"from": "human", "value": "unanswered"}]},  # line 6: ends with the user
    {
        "id": "a7",
        "conversations": [
            {"role": "user", "content": "role/content turns"},
            {"role": "assistant", "content": "work too"},
        ],
    },
]

OPENAI = [
    {
        "messages": [
            {"role": "developer", "content": "Be exact."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4", "weight": 1},
        ]
    },
    {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Part one, "}, {"type": "text", "text": "part two."}],
            },
            {"role": "assistant", "content": "Got both.", "name": "helper"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "What's the weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "12°C"},
            {"role": "assistant", "content": "12°C in Paris."},
        ]
    },  # line 3: tool calls
    {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "content": "A cat."},
        ]
    },  # line 4: an image
    {
        "tools": [{"type": "function", "function": {"name": "noop"}}],
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
    },
]

PROMPT_COMPLETION = [
    {"prompt": "Classify: great movie ->", "completion": " positive"},
    {"prompt": "Übersetze: cat", "completion": "Katze", "meta": {"src": "x"}},
    {"prompt": "empty completion", "completion": ""},  # line 3
]


# ------------------------------------------------------------------------------------------------ per format


def test_alpaca_to_chat_and_text(tmp_path):
    src = jsonl(tmp_path / "alpaca.jsonl", ALPACA)
    rep = convert_file(src, tmp_path / "chat.jsonl", source_format="alpaca")
    rows = read(tmp_path / "chat.jsonl")
    assert rep.converted == 4 and rep.skipped == 1
    assert rep.skipped_rows[0]["line"] == 5 and rep.skipped_rows[0]["field"] == "output"
    assert rows[0]["messages"] == [
        {"role": "user", "content": "Give three tips for staying healthy."},
        {"role": "assistant", "content": ALPACA[0]["output"]},
    ]
    assert rows[1]["messages"][0]["content"] == "Translate to French.\nGood morning, Zoë!"
    assert rows[2]["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert [m["role"] for m in rows[3]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert {(x["from"], x["to"]) for x in rep.mapping} >= {
        ("instruction (+ newline + input)", "user"),
        ("output", "assistant"),
    }
    passes_check(tmp_path / "chat.jsonl", "chat-completion")

    rep = convert_file(src, tmp_path / "text.jsonl", source_format="alpaca", target="text-generation")
    rows = read(tmp_path / "text.jsonl")
    assert rows[2] == {"prompt": "Answer briefly.\n\nSummarize\n東京は日本の首都です。", "completion": "東京は首都。"}
    assert rep.skipped_counts == {"multi-turn": 1, "empty-turn": 1}
    passes_check(tmp_path / "text.jsonl", "text-generation")


def test_alpaca_json_array(tmp_path):
    src = tmp_path / "alpaca_data.json"
    src.write_text(json.dumps(ALPACA, ensure_ascii=False, indent=2), encoding="utf-8")
    rep = convert_file(src, tmp_path / "out.jsonl")
    assert rep.reader == "json-array" and rep.format == "alpaca" and rep.converted == 4
    assert rep.skipped_rows[0]["where"] == "item 5"


def test_sharegpt_to_chat(tmp_path):
    src = jsonl(tmp_path / "sharegpt.jsonl", SHAREGPT)
    rep = convert_file(src, tmp_path / "chat.jsonl", source_format="sharegpt", system="Default system.")
    rows = read(tmp_path / "chat.jsonl")
    assert rep.converted == 3
    assert {r["line"]: r["kind"] for r in rep.skipped_rows} == {
        3: "unknown-role",
        4: "tool-calls",
        5: "empty-turn",
        6: "no-assistant",
    }
    unknown = next(r for r in rep.skipped_rows if r["line"] == 3)
    assert unknown["field"] == "conversations[1].from" and "'bard'" in unknown["message"]
    assert "--role" in unknown["hint"]
    assert rows[0]["messages"][0] == {"role": "system", "content": "You are terse."}  # its own system prompt kept
    assert rows[0]["messages"][1]["content"] == "Hi 👋"
    assert rows[1]["messages"][0] == {"role": "system", "content": "Speak German."}
    assert len(rows[1]["messages"]) == 5
    assert rows[2]["messages"][0] == {"role": "system", "content": "Default system."}
    mapping = {(x["from"], x["to"]): x["count"] for x in rep.mapping}
    assert mapping[("human", "user")] == 3 and mapping[("gpt", "assistant")] == 3
    assert rep.notes["field 'id' dropped (the target format has no place for it)"] == 3
    passes_check(tmp_path / "chat.jsonl", "chat-completion")
    # an unknown speaker can be mapped explicitly
    rep = convert_file(src, tmp_path / "chat2.jsonl", source_format="sharegpt", roles={"bard": "assistant"})
    assert rep.converted == 4 and ("bard", "assistant") in {(x["from"], x["to"]) for x in rep.mapping}


def test_openai_refuses_tool_calls_and_images(tmp_path):
    src = jsonl(tmp_path / "openai.jsonl", OPENAI)
    rep = convert_file(src, tmp_path / "chat.jsonl", source_format="openai")
    rows = read(tmp_path / "chat.jsonl")
    assert rep.converted == 3
    tool = next(r for r in rep.skipped_rows if r["kind"] == "tool-calls")
    assert tool["line"] == 3 and tool["field"] == "messages[1]" and "no place" in tool["message"]
    media = next(r for r in rep.skipped_rows if r["kind"] == "media")
    assert media["line"] == 4 and media["field"] == "messages[0].content[0]"
    assert rows[0]["messages"][0] == {"role": "system", "content": "Be exact."}
    assert rows[0]["messages"][2] == {"role": "assistant", "content": "4", "weight": 1}
    assert rows[1]["messages"][0]["content"] == "Part one, part two."
    assert rows[1]["messages"][1]["name"] == "helper"
    assert ("developer", "system") in {(x["from"], x["to"]) for x in rep.mapping}
    assert any("'tools' definitions dropped" in n for n in rep.notes)
    passes_check(tmp_path / "chat.jsonl", "chat-completion")


def test_prompt_completion_both_targets(tmp_path):
    src = jsonl(tmp_path / "pc.jsonl", PROMPT_COMPLETION)
    rep = convert_file(src, tmp_path / "text.jsonl", target="text-generation")
    assert rep.format == "prompt-completion" and rep.converted == 2
    assert read(tmp_path / "text.jsonl") == [
        {"prompt": "Classify: great movie ->", "completion": " positive"},
        {"prompt": "Übersetze: cat", "completion": "Katze"},
    ]
    assert rep.skipped_rows[0]["line"] == 3
    passes_check(tmp_path / "text.jsonl", "text-generation")
    convert_file(src, tmp_path / "chat.jsonl")
    assert read(tmp_path / "chat.jsonl")[1]["messages"] == [
        {"role": "user", "content": "Übersetze: cat"},
        {"role": "assistant", "content": "Katze"},
    ]


def test_bad_lines_are_skipped_with_their_line(tmp_path):
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(SHAREGPT[0]).encode()
        + b"\n{broken\n\n[1, 2]\n\xff\xfe\n"
        + json.dumps(SHAREGPT[1]).encode()
    )  # BOM, blank line, no final newline
    rep = convert_file(src, tmp_path / "out.jsonl", source_format="sharegpt")
    assert rep.converted == 2 and rep.blank_lines == 1
    assert [(r["line"], r["kind"]) for r in rep.skipped_rows] == [
        (2, "invalid-json"),
        (4, "not-an-object"),
        (5, "invalid-utf8"),
    ]


# ------------------------------------------------------------------------------------------------ detection


@pytest.mark.parametrize(
    "name,rows,fmt",
    [
        ("alpaca", ALPACA, "alpaca"),
        ("sharegpt", SHAREGPT, "sharegpt"),
        ("openai", OPENAI, "openai"),
        ("pc", PROMPT_COMPLETION, "prompt-completion"),
    ],
)
def test_from_auto_detects_and_says_so(tmp_path, name, rows, fmt):
    src = jsonl(tmp_path / f"{name}.jsonl", rows)
    res = run("convert", src, "--from", "auto", "--out", tmp_path / "out.jsonl")
    assert res.exit_code == 2, res.output  # every sample has a row that cannot be converted
    assert f"as {fmt} (detected: " in res.output
    assert "skipped" in res.output and f"{src} line " in res.output
    assert "→" in res.output  # the mapping is shown
    assert (tmp_path / "out.jsonl").exists()


def test_undetectable_format_is_a_clear_error(tmp_path):
    src = jsonl(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}])
    res = run("convert", src, "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "could not tell the format" in res.output and "question" in res.output
    assert "Traceback" not in res.output


def test_usage_errors(tmp_path):
    src = jsonl(tmp_path / "a.jsonl", ALPACA[:2])
    res = run("convert", src, "--out", src)
    assert res.exit_code == 2 and "overwrite the source" in res.output
    res = run("convert", src, "--from", "hf-disk", "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "dataset folder" in res.output
    res = run("convert", src, "--role", "bot=robot", "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "system, user or assistant" in res.output
    res = run("convert", src, "--system", "  ", "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "--system is empty" in res.output
    res = run("convert", tmp_path / "missing.jsonl", "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "no such file" in res.output
    assert src.read_text()


def test_clean_conversion_exits_zero_and_json_report(tmp_path):
    src = jsonl(tmp_path / "a.jsonl", ALPACA[:4])
    res = run("convert", src, "--out", tmp_path / "o.jsonl", "-o", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["ok"] and d["converted"] == 4 and d["format"] == "alpaca" and d["detected"]


# ------------------------------------------------------------------------------------------------ Arrow / Parquet


def save_to_disk_layout(folder: Path, rows: list[dict], shards: int = 2) -> Path:
    """What datasets.Dataset.save_to_disk writes: Arrow IPC stream shards, state.json and dataset_info.json."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    per = -(-len(rows) // shards)
    files = []
    for i in range(shards):
        name = f"data-{i:05d}-of-{shards:05d}.arrow"
        with pa.OSFile(str(folder / name), "wb") as sink, ipc.new_stream(sink, table.schema) as w:
            w.write_table(table.slice(i * per, per), max_chunksize=2)
        files.append({"filename": name})
    (folder / "state.json").write_text(json.dumps({"_data_files": files, "_fingerprint": "0", "_split": None}))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {}}))
    return folder


def test_hf_disk_dataset_and_dataset_dict(tmp_path):
    ds = save_to_disk_layout(tmp_path / "sg", SHAREGPT[:2] + SHAREGPT[6:])
    res = run("convert", ds, "--from", "hf-disk", "--out", tmp_path / "out.jsonl")
    assert res.exit_code == 0, res.output
    assert "hf-disk, 2 files" in res.output and "as sharegpt (detected" in res.output
    rows = read(tmp_path / "out.jsonl")
    assert len(rows) == 3 and rows[0]["messages"][1]["content"] == "Hi 👋"
    passes_check(tmp_path / "out.jsonl", "chat-completion")

    dd = tmp_path / "dd"
    save_to_disk_layout(dd / "train", ALPACA)
    save_to_disk_layout(dd / "test", ALPACA[:2], shards=1)
    (dd / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    rep = convert_file(dd, tmp_path / "train.jsonl", source_format="hf-disk")
    assert rep.format == "alpaca" and rep.converted == 4
    assert rep.skipped_rows[0]["where"] == "row 5"
    rep = convert_file(dd, tmp_path / "test.jsonl", split="test")
    assert rep.converted == 2
    res = run("convert", dd, "--split", "validation", "--out", tmp_path / "v.jsonl")
    assert res.exit_code == 2 and "train, test" in res.output


def test_parquet_file_with_tool_calls(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello", "tool_calls": None},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function"}]},
            ]
        },
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    rep = convert_file(tmp_path / "train.parquet", tmp_path / "out.jsonl")
    assert rep.reader == "parquet" and rep.format == "openai" and rep.converted == 1
    assert rep.skipped_rows[0]["kind"] == "tool-calls" and rep.skipped_rows[0]["row"] == 2
    assert read(tmp_path / "out.jsonl") == [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    ]


def test_dataset_folder_cannot_point_outside_itself(tmp_path):
    ds = save_to_disk_layout(tmp_path / "ds", ALPACA[:2], shards=1)
    (tmp_path / "secret.arrow").write_bytes((ds / "data-00000-of-00001.arrow").read_bytes())
    (ds / "state.json").write_text(json.dumps({"_data_files": [{"filename": "../secret.arrow"}]}))
    res = run("convert", ds, "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "outside the dataset folder" in res.output
    (ds / "dataset_dict.json").write_text(json.dumps({"splits": ["../.."]}))
    res = run("convert", ds, "--split", "../..", "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_corrupt_arrow_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"PAR1 not really")
    res = run("convert", bad, "--from", "openai", "--out", tmp_path / "o.jsonl")
    assert res.exit_code == 2 and "not a readable Arrow/Parquet file" in res.output


# ------------------------------------------------------------------------------------------------ workers


def test_worker_processes_give_the_same_bytes_and_lines(tmp_path, monkeypatch):
    rows = []
    for i in range(3000):
        rows.append(SHAREGPT[i % len(SHAREGPT)])
    src = jsonl(tmp_path / "big.jsonl", rows)
    one = convert_file(src, tmp_path / "one.jsonl", source_format="sharegpt", workers=1)
    monkeypatch.setattr(convert, "PARALLEL_MIN_BYTES", 0)
    two = convert_file(src, tmp_path / "two.jsonl", source_format="sharegpt", workers=2)
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert one.skipped_counts == two.skipped_counts and one.converted == two.converted
    assert one.mapping == two.mapping
    lines = [r["line"] for r in two.skipped_rows if r["kind"] == "tool-calls"]
    assert lines == [i + 1 for i in range(3000) if i % len(SHAREGPT) == 3][:50]


def test_check_points_at_convert_for_known_formats(tmp_path):
    res = run("check", jsonl(tmp_path / "sg.jsonl", SHAREGPT[:2]))
    assert res.exit_code == 2 and "azft data convert" in res.output and "sharegpt" in res.output
    res = run("check", jsonl(tmp_path / "al.jsonl", ALPACA[:2]))
    assert res.exit_code == 2 and "--from alpaca" in res.output
