"""Start and stop Azurite's blob service on a free loopback port, over HTTPS, accepting bearer tokens.

Azurite comes from npm (``package.json`` at the repository root pins it; ``npm install`` puts it in
``node_modules/``). Its location can be overridden with ``AZFT_AZURITE`` (the ``azurite-blob`` script itself or a
directory holding ``node_modules/.bin/azurite-blob``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from azft.emulator.tls import TestCA, make_test_ca
from azft.errors import AzftError

ACCOUNT_NAME = "devstoreaccount1"


class AzuriteError(AzftError):
    """Azurite could not be found or started."""


def find_azurite(start: str | os.PathLike[str] | None = None) -> Path:
    """The ``azurite-blob`` launcher: ``AZFT_AZURITE``, else ``node_modules/.bin`` in this or a parent directory
    of ``start`` (default: the current directory) or of the azft source tree."""
    tried: list[str] = []
    env = os.environ.get("AZFT_AZURITE")
    if env:
        p = Path(env)
        for cand in (p, p / "azurite-blob", p / "node_modules" / ".bin" / "azurite-blob"):
            tried.append(str(cand))
            if cand.is_file():
                return cand
        raise AzuriteError(f"AZFT_AZURITE={env} does not point at azurite-blob (tried {', '.join(tried)})")
    roots = [Path(start or os.getcwd()).resolve(), Path(__file__).resolve().parent]
    for root in roots:
        for d in (root, *root.parents):
            cand = d / "node_modules" / ".bin" / "azurite-blob"
            if cand.is_file():
                return cand
            tried.append(str(cand))
    found = shutil.which("azurite-blob")
    if found:
        return Path(found)
    raise AzuriteError(
        "azurite-blob was not found",
        hint="run `npm install` at the repository root (package.json pins azurite), or set AZFT_AZURITE",
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Azurite:
    """A running ``azurite-blob``: HTTPS with a test CA, ``--oauth basic``, telemetry off, data in a temp folder.

    ``blob_endpoint`` is the path-style account URL, e.g. ``https://127.0.0.1:PORT/devstoreaccount1``.
    """

    def __init__(
        self,
        ca: TestCA | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        location: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
    ):
        self.host = host
        self._ca = ca
        self._requested_port = port
        self.port: int | None = None
        self._location = Path(location) if location else None
        self._own_location = location is None
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def ca(self) -> TestCA:
        if self._ca is None:
            self._ca = make_test_ca()
        return self._ca

    @property
    def blob_endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("Azurite is not running")
        return f"https://{self.host}:{self.port}/{ACCOUNT_NAME}"

    def start(self) -> Azurite:
        if self.process is not None:
            return self
        exe = find_azurite()
        if self._location is None:
            self._location = Path(tempfile.mkdtemp(prefix="azft-azurite-"))
        self._location.mkdir(parents=True, exist_ok=True)
        self._log_path = self._location / "azurite.log"
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probing and binding: try another
            self.port = self._requested_port or _free_port(self.host)
            cmd = [
                str(exe),
                "--blobHost",
                self.host,
                "--blobPort",
                str(self.port),
                "--cert",
                str(self.ca.cert_pem_path),
                "--key",
                str(self.ca.key_pem_path),
                "--oauth",
                "basic",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
                "--location",
                str(self._location),
                "--silent",
            ]
            with open(self._log_path, "ab") as log:
                self.process = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            if self._wait_ready():
                return self
            last_error = self._log_tail()
            self._terminate()
            if self._requested_port:
                break
        raise AzuriteError(
            f"Azurite did not start on {self.host}: {last_error or 'no output'}", hint=f"see {self._log_path}"
        )

    def _wait_ready(self) -> bool:
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.ca.ca_pem_path))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with (
                    socket.create_connection((self.host, int(self.port or 0)), timeout=1) as raw,
                    ctx.wrap_socket(raw, server_hostname=self.host) as tls,
                ):
                    tls.sendall(
                        f"GET /{ACCOUNT_NAME}?comp=properties HTTP/1.1\r\nHost: {self.host}\r\n"
                        "Connection: close\r\n\r\n".encode()
                    )
                    if tls.recv(12).startswith(b"HTTP/1.1"):
                        return True
            except OSError:
                time.sleep(0.1)
        return False

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-500:].strip() if self._log_path else ""
        except OSError:
            return ""

    def _terminate(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop(self) -> None:
        self._terminate()
        if self._own_location and self._location is not None:
            shutil.rmtree(self._location, ignore_errors=True)
            self._location = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
