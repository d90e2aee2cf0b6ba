"""Starting and stopping the local deployment's server process (``azft.deploy.server``), detached from the command
that started it, in its own process group; its key, port, log and last call under ``.azft/deployments/NAME/``."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from azft.deploy.records import deployment_dir
from azft.errors import UsageError
from azft.state import azft_home, write_private

START_TIMEOUT = 180.0


def start(name: str, job: str) -> tuple[int, int]:
    """Start the server for ``job``; (pid, port) once it answers. UsageError with the log's tail if it dies."""
    folder = deployment_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / "key", secrets.token_urlsafe(32))
    for stale in ("port", "last_call"):
        (folder / stale).unlink(missing_ok=True)
    env = {**os.environ, "AZFT_HOME": str(azft_home()), "PYTHONUNBUFFERED": "1"}
    with open(folder / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "azft.deploy.server", "--name", name, "--job", job],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=str(azft_home()),
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if (folder / "port").is_file():
            return proc.pid, int((folder / "port").read_text())
        if proc.poll() is not None:
            tail = (folder / "server.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise UsageError(
                f"the local server for {job} exited with code {proc.returncode}: " + " | ".join(tail),
                hint=f"full log: {folder / 'server.log'}",
            )
        time.sleep(0.2)
    _kill(proc.pid)
    raise UsageError(
        f"the local server for {job} did not start within {START_TIMEOUT:.0f} s", hint=f"log: {folder / 'server.log'}"
    )


def ours(pid: Optional[int], name: str) -> bool:
    """Whether ``pid`` is still this deployment's server (not a recycled pid of something else)."""
    if not pid:
        return False
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc: trust the recorded pid
    return b"azft.deploy.server" in cmd and name.encode() in cmd


def _kill(pid: int) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def stop(name: str, pid: Optional[int]) -> bool:
    """Stop the server; False when it was not running any more."""
    running = ours(pid, name)
    if running and pid:
        _kill(pid)
    (deployment_dir(name) / "port").unlink(missing_ok=True)
    return running


def key(name: str) -> str:
    try:
        return (deployment_dir(name) / "key").read_text().strip()
    except OSError:
        raise UsageError(f"no key for local deployment {name!r}") from None


def last_call(name: str) -> Optional[float]:
    try:
        return float((deployment_dir(name) / "last_call").read_text())
    except (OSError, ValueError):
        return None
