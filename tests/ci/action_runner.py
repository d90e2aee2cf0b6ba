"""A small runner for a GitHub workflow job that uses azft's composite action, close to what the Actions runner does:

* `${{ }}` expressions (contexts `inputs`, `github`, `runner`, `steps`, `env`, `vars`; `==`, `!=`, `&&`, `||`, `!`,
  parentheses; `always()`, `success()`, `failure()`, `cancelled()`, `startsWith()`), evaluated with GitHub's rules
  for `||`/`&&` values and case-insensitive string comparison;
* `run:` steps with `bash --noprofile --norc -eo pipefail`, `$GITHUB_OUTPUT`, `$GITHUB_ENV`, `$GITHUB_STEP_SUMMARY`,
  `$GITHUB_ACTION_PATH` and `$RUNNER_TEMP`; a step's `if:` (default `success()`);
* the marketplace actions the azft action calls stand in for themselves where they have no effect on this machine
  (setup-python: the test's Python is already on PATH; cache: nothing to restore; azure/login: recorded, never reached
  on mock) and `actions/upload-artifact` copies its `path` into an artifacts folder, leaving out hidden files unless
  `include-hidden-files` is true, as the real action does.
This stands in for GitHub's runner, which cannot run here; the azft commands themselves run for real.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The token the runner hands the action (github.token); the stub accepts only this one.
TOKEN = "ghs_testtoken0123456789abcdefABCDEF0123"

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)|"
    r"(?P<id>[A-Za-z_][\w-]*(?:\.[\w-]+|\[\s*'[^']*'\s*\])*))"
)


class Expr:
    """GitHub Actions expressions, the subset azft's files use."""

    def __init__(self, text: str, ctx: dict, status: dict):
        self.toks, pos = [], 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ValueError(f"cannot parse expression {text!r} at {text[pos:]!r}")
            kind = m.lastgroup
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i, self.ctx, self.status = 0, ctx, status

    def value(self) -> Any:
        v = self._or()
        if self.i != len(self.toks):
            raise ValueError(f"trailing tokens {self.toks[self.i :]}")
        return v

    def _peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _or(self) -> Any:
        v = self._and()
        while self._peek() == ("op", "||"):
            self.i += 1
            rhs = self._and()
            v = v if truthy(v) else rhs
        return v

    def _and(self) -> Any:
        v = self._eq()
        while self._peek() == ("op", "&&"):
            self.i += 1
            rhs = self._eq()
            v = rhs if truthy(v) else v
        return v

    def _eq(self) -> Any:
        v = self._unary()
        tok = self._peek()
        if tok in (("op", "=="), ("op", "!=")):
            self.i += 1
            rhs = self._unary()
            same = str(_s(v)).lower() == str(_s(rhs)).lower()
            return same if tok[1] == "==" else not same
        return v

    def _unary(self) -> Any:
        if self._peek() == ("op", "!"):
            self.i += 1
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self.toks[self.i]
        self.i += 1
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text == "(":
            v = self._or()
            self.i += 1
            return v
        if self._peek() == ("op", "("):
            self.i += 1
            args = []
            while self._peek() != ("op", ")"):
                args.append(self._or())
                if self._peek() == ("op", ","):
                    self.i += 1
            self.i += 1
            return self._call(text, args)
        if text in ("true", "false"):
            return text == "true"
        return self._lookup(text)

    def _call(self, name: str, args: list) -> Any:
        if name == "always":
            return True
        if name == "success":
            return not self.status["failed"]
        if name == "failure":
            return self.status["failed"]
        if name == "cancelled":
            return False
        if name == "startsWith":
            return str(_s(args[0])).lower().startswith(str(_s(args[1])).lower())
        raise ValueError(f"function {name}() is not supported by the test runner")

    def _lookup(self, path: str) -> Any:
        node: Any = self.ctx
        for part in re.split(r"\.|\[", path.replace("]", "").replace("'", "")):
            node = node.get(part.strip()) if isinstance(node, dict) else None
            if node is None:
                return ""
        return node


def _s(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def truthy(v: Any) -> bool:
    return v not in ("", None, False, 0, 0.0)


def interpolate(text: Any, ctx: dict, status: dict) -> Any:
    if not isinstance(text, str):
        return text
    whole = re.fullmatch(r"\s*\$\{\{(.*?)\}\}\s*", text, re.S)
    if whole:
        return _s(Expr(whole.group(1), ctx, status).value())
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(_s(Expr(m.group(1), ctx, status).value())), text, flags=re.S)


@dataclass
class StepRecord:
    name: str
    ran: bool
    code: int = 0
    stdout: str = ""
    stderr: str = ""
    uses: str | None = None
    with_: dict = field(default_factory=dict)


class ActionRunner:
    """Runs one job of a workflow whose steps use azft's action (``action_ref`` is resolved to ``action_dir``)."""

    def __init__(
        self,
        workspace: Path,
        action_dir: Path,
        action_ref: str,
        temp: Path,
        env: dict,
        github: dict,
        vars_: dict | None = None,
    ):
        self.workspace, self.action_dir, self.action_ref = workspace, action_dir, action_ref
        self.temp, self.base_env, self.github, self.vars = temp, dict(env), github, vars_ or {}
        self.records: list[StepRecord] = []
        self.artifacts = temp / "artifacts"
        self.summary = temp / "step_summary.md"
        self.extra_env: dict[str, str] = {}
        self.status = {"failed": False}

    # -- the workflow job --------------------------------------------------------------------------------------
    def run_job(self, workflow: Path, job: str) -> dict:
        doc = yaml.safe_load(workflow.read_text())
        wf_env = doc.get("env") or {}
        jdoc = doc["jobs"][job]
        ctx = {
            "github": self.github,
            "vars": self.vars,
            "env": dict(wf_env),
            "runner": self._runner(),
            "steps": {},
            "inputs": {},
        }
        ctx["env"].update({k: interpolate(v, ctx, self.status) for k, v in (jdoc.get("env") or {}).items()})
        outputs: dict = {}
        for step in jdoc["steps"]:
            uses = str(step.get("uses", ""))
            if uses.startswith("actions/checkout@"):
                self.records.append(StepRecord("checkout", True, uses=uses))
                continue
            assert uses == self.action_ref, f"the test job uses {uses!r}, not the azft action"
            with_ = {k: interpolate(v, ctx, self.status) for k, v in (step.get("with") or {}).items()}
            outputs = self.run_action(with_, ctx["env"])
        return outputs

    def _runner(self) -> dict:
        return {"temp": str(self.temp / "runner"), "os": "Linux"}

    # -- the composite action ----------------------------------------------------------------------------------
    def run_action(self, with_: dict, job_env: dict) -> dict:
        action = yaml.safe_load((self.action_dir / "action.yml").read_text())
        inputs = {k: str(with_.get(k, v.get("default", ""))) for k, v in action["inputs"].items()}
        unknown = set(with_) - set(inputs)
        assert not unknown, f"the action has no input(s) {unknown}"
        ctx = {
            "github": self.github,
            "vars": self.vars,
            "env": dict(job_env),
            "runner": self._runner(),
            "steps": {},
            "inputs": {},
        }
        inputs = {k: str(interpolate(v, ctx, self.status)) for k, v in inputs.items()}
        ctx["inputs"] = inputs
        Path(ctx["runner"]["temp"]).mkdir(parents=True, exist_ok=True)
        for step in action["runs"]["steps"]:
            self._step(step, ctx)
        return {k: interpolate(v["value"], ctx, self.status) for k, v in (action.get("outputs") or {}).items()}

    def _step(self, step: dict, ctx: dict) -> None:
        name = step.get("name") or step.get("uses") or "step"
        cond = step.get("if")
        if cond is not None:
            cond = str(cond).strip()
            cond = cond[3:-2] if cond.startswith("${{") else cond
            ok = truthy(Expr(cond, ctx, self.status).value())
        else:
            ok = not self.status["failed"]
        if not ok:
            self.records.append(StepRecord(name, False, uses=step.get("uses")))
            return
        ctx["env"] = {**ctx["env"], **self.extra_env}
        if "uses" in step:
            self._uses(step, ctx, name)
        else:
            self._run(step, ctx, name)

    def _uses(self, step: dict, ctx: dict, name: str) -> None:
        uses = step["uses"]
        with_ = {k: interpolate(v, ctx, self.status) for k, v in (step.get("with") or {}).items()}
        rec = StepRecord(name, True, uses=uses, with_=with_)
        if uses.startswith("actions/upload-artifact@"):
            hidden = str(with_.get("include-hidden-files", "false")).lower() == "true"
            dest = self.artifacts / str(with_["name"])
            for line in str(with_["path"]).splitlines():
                src = Path(line.strip())
                if src.is_dir():
                    shutil.copytree(
                        src, dest, dirs_exist_ok=True, ignore=None if hidden else shutil.ignore_patterns(".*")
                    )
        self.records.append(rec)

    def _run(self, step: dict, ctx: dict, name: str) -> None:
        out_file = self.temp / f"out-{len(self.records)}"
        env_file = self.temp / f"env-{len(self.records)}"
        for f in (out_file, env_file):
            f.write_text("")
        env = {**self.base_env, **{k: str(v) for k, v in ctx["env"].items()}}
        env.update({k: str(interpolate(v, ctx, self.status)) for k, v in (step.get("env") or {}).items()})
        env.update(
            GITHUB_OUTPUT=str(out_file),
            GITHUB_ENV=str(env_file),
            GITHUB_STEP_SUMMARY=str(self.summary),
            GITHUB_ACTION_PATH=str(self.action_dir),
            RUNNER_TEMP=ctx["runner"]["temp"],
            GITHUB_WORKSPACE=str(self.workspace),
            GITHUB_EVENT_NAME=str(self.github.get("event_name")),
        )
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        self.records.append(StepRecord(name, True, proc.returncode, proc.stdout, proc.stderr))
        if proc.returncode != 0:
            self.status["failed"] = True
        outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line)
        if step.get("id"):
            ctx["steps"][step["id"]] = {"outputs": outputs, "outcome": "failure" if proc.returncode else "success"}
        self.extra_env.update(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)

    def record(self, name: str) -> StepRecord:
        return next(r for r in self.records if r.name == name)


class GitHubStub:
    """A stand-in for GitHub's REST API (it cannot run here): GET/POST /repos/{repo}/issues/{n}/comments and PATCH /repos/{repo}/issues/comments/{id}."""

    def __init__(self):
        self.comments: list[dict] = []
        self.calls: list[tuple[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reply(self, code: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

            def _handle(self, method: str) -> None:
                stub.calls.append((method, self.path))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._reply(401, {"message": "Bad credentials"})
                path = self.path.split("?")[0]
                if method == "GET" and path == "/repos/acme/bots/issues/7/comments":
                    return self._reply(200, stub.comments if "page=1" in self.path else [])
                if method == "POST" and path == "/repos/acme/bots/issues/7/comments":
                    c = {
                        "id": 100 + len(stub.comments),
                        "body": self._body()["body"],
                        "html_url": f"https://github.example/acme/bots/pull/7#c{len(stub.comments)}",
                    }
                    stub.comments.append(c)
                    return self._reply(201, c)
                if method == "PATCH" and path.startswith("/repos/acme/bots/issues/comments/"):
                    cid = int(path.rsplit("/", 1)[1])
                    c = next(c for c in stub.comments if c["id"] == cid)
                    c["body"] = self._body()["body"]
                    return self._reply(200, c)
                return self._reply(404, {"message": "Not Found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
