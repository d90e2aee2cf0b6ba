"""Loading a spec is bounded: file type, size, alias expansion, nesting depth and value count each stop with a clear
error (exit 2, file and line), never a hang, a traceback or unbounded memory."""

from __future__ import annotations

import os
import resource
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azft.errors import SpecError
from azft.safe_yaml import MAX_ALIASES, MAX_BYTES, MAX_DEPTH, MAX_NODES
from azft.spec import load_spec, parse_spec_text

GOOD = "name: demo\nmodel: tiny-phi3\ndata: {train: train.jsonl}\n"


def _problem(e: pytest.ExceptionInfo) -> str:
    return " ".join(p.render() for p in e.value.problems) + " " + e.value.message


def _laughs(levels: int, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return GOOD + "x:\n" + "".join(f"  {line}\n" for line in lines)


@pytest.mark.parametrize("levels", [4, 6, 9, 12])
def test_billion_laughs_stops_at_the_value_limit(levels):
    with pytest.raises(SpecError) as e:
        parse_spec_text(_laughs(levels), file="s.yaml")
    text = _problem(e)
    assert "values" in text or "aliases" in text or "unknown key" in text


def test_many_aliases_are_refused():
    text = GOOD + "tags: &t {a: b}\nx: [" + ", ".join(["*t"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(SpecError) as e:
        parse_spec_text(text, file="s.yaml")
    assert "aliases" in _problem(e)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 20_000])
@pytest.mark.parametrize("style", ["flow-list", "flow-map", "block"])
def test_deep_nesting_is_refused_with_a_line(depth, style):
    if style == "flow-list":
        body = "x: " + "[" * depth + "]" * depth + "\n"
    elif style == "flow-map":
        body = "x: " + "{a: " * depth + "1" + "}" * depth + "\n"
    else:
        depth = min(depth, 2_000)
        body = "x:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(depth))
    with pytest.raises(SpecError) as e:
        parse_spec_text(GOOD + body, file="s.yaml")
    assert "nest" in _problem(e)  # ours at MAX_DEPTH, or libyaml's own limit further down
    assert e.value.problems[0].line is not None


def test_too_many_values_are_refused():
    text = GOOD + "tags:\n" + "".join(f"  k{i}: v\n" for i in range(MAX_NODES // 2 + 10))
    with pytest.raises(SpecError) as e:
        parse_spec_text(text, file="s.yaml")
    assert "more than" in _problem(e) and "values" in _problem(e)


def test_a_spec_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    p = tmp_path / "big.yaml"
    with open(p, "wb") as f:
        f.write(GOOD.encode())
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert "MB" in _problem(e)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_not_read(device):
    if not os.path.exists(device):
        pytest.skip(f"{device} missing")
    with pytest.raises(SpecError) as e:
        load_spec(device)
    assert "not a regular file" in _problem(e) and "device" in _problem(e)


def test_a_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    result: dict = {}

    def load():
        try:
            load_spec(fifo)
        except SpecError as e:
            result["error"] = _problem(pytest.ExceptionInfo.from_exc_info((type(e), e, e.__traceback__)))

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():  # unblock the reader so the test run can end, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("loading a FIFO blocked")
    assert "FIFO" in result["error"]


def test_a_directory_and_a_symlink_loop_say_what_they_are(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for path, words in ((tmp_path, "directory"), (tmp_path / "a", "symbolic links")):
        with pytest.raises(SpecError) as e:
            load_spec(path)
        assert words in _problem(e).lower(), _problem(e)


@pytest.mark.parametrize("tail", ["model: [unclosed", "model: {a: 1", "model: 'open", "- x", "a: b: c", "\t- x"])
def test_a_syntax_error_on_the_last_line_names_it(tail):
    text = GOOD + tail
    with pytest.raises(SpecError) as e:
        parse_spec_text(text, file="s.yaml")
    assert e.value.problems[0].line is not None
    assert e.value.problems[0].line <= text.count("\n") + 2


def test_a_10_mb_spec_loads_with_bounded_memory():
    """Speed is measured in bench/spec_load.py; here: a 10 MB spec loads and does not balloon memory."""
    text = GOOD + "description: " + "lorem ipsum dolor sit amet " * (10_000_000 // 27) + "\n"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    spec = parse_spec_text(text, file="s.yaml")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(spec.description) > 9_000_000
    assert grown_mb < 400


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_a_spec_or_a_spec_error(text):
    try:
        parse_spec_text(GOOD + text, file="s.yaml", env={})
    except SpecError as e:
        assert e.problems
