"""Job names are checked against Azure ML's name rule before they touch the file system, on every command and backend.

A hostile name (a path, a traversal, a name too long for the file system, control characters) is refused with exit 2,
no traceback, and nothing outside (or inside) AZFT_HOME is read, written or signalled."""

from __future__ import annotations

import json
import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azft.errors import UsageError
from azft.state import JOB_NAME_RE, check_job_name, job_dir

COMMANDS = [("status",), ("wait", "--timeout", "1"), ("logs",), ("cancel",), ("results",)]
BACKENDS = ["local", "mock", "maas", "maap", None]

HOSTILE = [
    "../../../victim",
    "..",
    ".",
    "/etc",
    "/tmp/x/../victim",
    "a/../../victim",
    "a/b",
    "a\\b",
    "-rf",
    "_x",
    "x" * 256,
    "x" * 5000,
    "name\x00.json",
    "name\n",
    " name",
    "naïve",
    "a b",
    "a:b",
    "~",
    "~root",
    "$HOME",
    "a.b",
]


@pytest.fixture
def victim(tmp_path):
    """A state.json outside AZFT_HOME, shaped like a local job's, whose process group must never be signalled."""
    d = tmp_path / "victim"
    d.mkdir()
    state = {
        "name": "victim",
        "backend": "local",
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "created": "2026-01-01T00:00:00+00:00",
        "command": ["true"],
        "outputs": {},
    }
    (d / "state.json").write_text(json.dumps(state))
    return d


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_traversal_is_refused_by_every_command_on_every_backend(run_cli, victim, _azft_home, command, backend):
    before = (victim / "state.json").read_bytes()
    names = [os.path.relpath(victim, _azft_home / ".azft" / "jobs"), str(victim), "x" * 5000]
    for name in names:
        args = [command[0], name, *command[1:]] + (
            ["--backend", backend] if backend and command[0] != "results" else []
        )
        r = run_cli(*args)
        assert r.code == 2, (args, r.text)
        assert "Traceback" not in r.text
        assert "not a valid job name" in r.text or "too long" in r.text
    assert (victim / "state.json").read_bytes() == before  # not rewritten (and this process was not signalled)
    assert not (_azft_home / ".azft" / "jobs").exists() or not any((_azft_home / ".azft" / "jobs").iterdir())


def test_json_mode_reports_the_refusal_as_json(run_cli):
    r = run_cli("status", "../../etc", "--output", "json")
    assert r.code == 2
    doc = json.loads(r.out)
    assert doc["ok"] is False and doc["exit_code"] == 2 and "job name" in doc["error"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_by_the_check(name):
    with pytest.raises(UsageError) as e:
        job_dir(name)
    assert len(e.value.message) < 200  # a 5,000-character name is not echoed back whole


_NAME_CHARS = string.ascii_letters + string.digits + "-_"


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.text(min_size=0, max_size=300))
def test_any_accepted_name_stays_a_single_directory_under_jobs(name):
    try:
        path = job_dir(name)
    except UsageError:
        assert not JOB_NAME_RE.fullmatch(name)
        return
    assert path.parent.name == "jobs" and path.name == name
    assert set(name) <= set(_NAME_CHARS) and len(name) <= 255 and name[0].isalnum()


@given(st.text(alphabet=_NAME_CHARS, min_size=1, max_size=255).filter(lambda s: s[0].isalnum()))
def test_every_azure_ml_name_is_accepted(name):
    assert check_job_name(name) == name


def test_the_api_checks_the_name_before_looking_anywhere(victim):
    import azft

    for name in ("../victim", str(victim), "x" * 300):
        with pytest.raises(UsageError):
            azft.get_job(name, backend="local")
