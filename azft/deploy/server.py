"""The local deployment: a chat-completions server on 127.0.0.1 serving a local job's fine-tuned model.

``python -m azft.deploy.server --name NAME --job JOB`` (what ``azft deploy JOB`` starts, detached) loads the model
with ``azft.trained`` (the recipe's tokenizer and chat rendering, greedy decoding with the KV cache) and answers:

* ``POST /v1/chat/completions`` (and ``/chat/completions``): OpenAI's request and response shape
  (``azft.chat_wire``), ``Authorization: Bearer <key>`` with the key in ``.azft/deployments/NAME/key`` (0600).
  Decoding is greedy, so answers are deterministic; ``temperature`` is checked and otherwise ignored.
* ``GET /v1/models``: the one model, behind the same key. ``GET /health``: liveness, no key.

Requests are served one generation at a time (one model in memory, two CPU cores); bodies over 1 MiB are refused.
The port it bound is written to ``.azft/deployments/NAME/port`` once the model is loaded; every answered call
updates ``last_call`` there.
"""

from __future__ import annotations

import argparse
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 1 << 20
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


class ModelServer:
    """The loaded model and what serving it needs."""

    def __init__(self, name: str, job: str, folder: Path):
        from azft.trained.job import TrainedModel

        self.name, self.folder = name, folder
        self.key = (folder / "key").read_text().strip()
        self.tm = TrainedModel.from_job(job)
        self.tokenizer = self.tm.tokenizer()
        self.model = self.tm.load()
        self.lock = threading.Lock()

    def complete(self, body: Any) -> tuple[int, dict]:
        from azft.chat_wire import ChatRequestError, parse_request, response
        from azft.trained.generate import generate, prompt_ids

        try:
            req = parse_request(body)
        except ChatRequestError as e:
            return 400, e.body()
        ids = prompt_ids(self.tokenizer, req.messages)
        with self.lock:
            gen = generate(
                self.model,
                self.tokenizer,
                [ids],
                max_new_tokens=req.max_tokens,
                batch_size=1,
                max_length=self.tm.max_seq_length,
            )[0]
        (self.folder / "last_call").write_text(str(time.time()))
        return 200, response(
            req,
            gen.text,
            model=self.name,
            prompt_tokens=len(ids),
            completion_tokens=gen.tokens,
            finish_reason=gen.finish_reason,
        )


def make_handler(srv: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "azft-serve/1"

        def log_message(self, format: str, *args: Any) -> None:  # no request lines (and never a header) in the log
            pass

        def _send(self, status: int, body: dict) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _authorized(self) -> bool:
            given = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if given and hmac.compare_digest(given.encode(), srv.key.encode()):
                return True
            self._send(
                401,
                {
                    "error": {
                        "message": "missing or invalid API key (Authorization: Bearer <key>)",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
            return False

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"status": "ok", "model": srv.name})
            elif self.path == "/v1/models":
                if self._authorized():
                    self._send(
                        200, {"object": "list", "data": [{"id": srv.name, "object": "model", "owned_by": "azft"}]}
                    )
            else:
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in CHAT_PATHS:
                self._send(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
                return
            if not self._authorized():
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self.close_connection = True
                self._send(
                    413 if length > MAX_BODY else 400,
                    {
                        "error": {
                            "message": f"a JSON body of at most {MAX_BODY} bytes is required",
                            "type": "invalid_request_error",
                        }
                    },
                )
                return
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._send(400, {"error": {"message": "the body is not JSON", "type": "invalid_request_error"}})
                return
            status, answer = srv.complete(body)
            self._send(status, answer)

    return Handler


def main(argv: list[str] | None = None) -> int:
    import os

    from azft.deploy.records import deployment_dir
    from azft.state import write_private

    p = argparse.ArgumentParser(prog="python -m azft.deploy.server")
    p.add_argument("--name", required=True)
    p.add_argument("--job", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    # the entry point of the server's own process (`python -m azft.deploy.server`): the setting is the process's
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    folder = deployment_dir(args.name)
    srv = ModelServer(args.name, args.job, folder)
    httpd = ThreadingHTTPServer((args.host, args.port), make_handler(srv))
    httpd.daemon_threads = True
    write_private(folder / "port", str(httpd.server_address[1]))
    print(f"serving {args.job} as {args.name} on http://{args.host}:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
