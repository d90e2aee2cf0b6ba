"""The local backend: runs the fine-tune component's own command on this machine.

One interface, two places: the command line is built from ``components/finetune/component.yml`` exactly as Azure
ML builds it (``${{inputs.x}}``, ``${{outputs.x}}``, optional ``$[[...]]`` blocks), then launched as a detached
process group — ``python``, or ``torchrun`` / the ``deepspeed`` launcher for several processes or a ZeRO stage.

Each job lives in ``.azft/jobs/<job>/`` (under ``$AZFT_HOME`` if set, else the current directory)::

    state.json   name, command, outputs, pid/pgid, attempts, MLflow run, cancel flag
    job.log      stdout and stderr of every attempt
    exit_code    written by the job's shell when the command returns
    outputs/     model/ (adapter or full weights + tokenizer) and metrics/ (unless spec.local.output_dir is set)

So ``azft status / logs / cancel / list`` work from any later process. Re-submitting the same job name while it runs
returns the running job; after it was killed (or failed), re-submitting starts it again in the same directories and
the recipe resumes from its last checkpoint; ``force=True`` starts a fresh job under a suffixed name.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from azft.backends.base import Backend, Job, JobInfo, JobStatus
from azft.errors import DataError, JobFailedError, UsageError
from azft.metrics import canonical
from azft.render import timestamp
from azft.state import azft_home, check_job_name, jobs_dir, write_private

ERROR_PREFIX = "azft-finetune: error:"
_PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.S)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(obj: Any, dotted: str, default: Any = None) -> Any:
    """``obj.a.b.c`` that tolerates missing levels (specs without a ``local`` or ``deepspeed`` section)."""
    for part in dotted.split("."):
        if obj is None:
            return default
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
    return default if obj is None else obj


# ------------------------------------------------------------------------------------------- component → argv


class ComponentCommand:
    """A command component's YAML, turned into an argv the way Azure ML renders the command."""

    def __init__(self, path: str | Path):
        from ruamel.yaml import YAML

        self.path = Path(path)
        if not self.path.exists():
            raise UsageError(
                f"component file not found: {self.path}",
                hint="the local backend runs components/finetune/component.yml; reinstall azft",
            )
        data = YAML(typ="safe").load(self.path.read_text())
        self.inputs: dict[str, dict] = dict(data.get("inputs") or {})
        self.outputs: dict[str, dict] = dict(data.get("outputs") or {})
        self.command: str = " ".join(str(data["command"]).split())
        self.code_dir = (self.path.parent / str(data.get("code", "."))).resolve()

    @staticmethod
    def format_value(value: Any) -> str:
        if isinstance(value, bool):
            return "True" if value else "False"  # how Azure ML renders boolean inputs
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return repr(value)
        return str(value)

    def resolve_inputs(self, given: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - set(self.inputs))
        if unknown:
            raise UsageError(
                f"{self.path}: unknown component input(s): {', '.join(unknown)}",
                hint=f"inputs are: {', '.join(self.inputs)}",
            )
        values: dict[str, Any] = {}
        for name, decl in self.inputs.items():
            v = given.get(name)
            if v is None:
                v = decl.get("default")
            if v is None and not decl.get("optional", False):
                raise UsageError(f"{self.path}: input {name!r} is required and has no value")
            if v is not None and decl.get("type") in ("uri_file", "uri_folder") and "://" not in str(v):
                p = Path(str(v)).expanduser()
                if not p.exists():
                    raise DataError(f"input {name}: {p} does not exist", hint="local jobs read data from local paths")
                v = str(p.resolve())
            if v is not None and "enum" in decl and str(v) not in [str(e) for e in decl["enum"]]:
                raise UsageError(f"{self.path}: input {name}={v!r} is not one of {decl['enum']}")
            values[name] = v
        return values

    def argv(self, inputs: dict[str, Any], outputs: dict[str, str]) -> list[str]:
        values = self.resolve_inputs(inputs)
        missing_out = sorted(set(self.outputs) - set(outputs))
        if missing_out:
            raise UsageError(f"{self.path}: no path for output(s) {', '.join(missing_out)}")

        def known(kind: str, name: str) -> bool:
            return (values.get(name) is not None) if kind == "inputs" else name in outputs

        def keep_optional(m: re.Match) -> str:
            inner = m.group(1)
            refs = _PLACEHOLDER.findall(inner)
            return inner if all(known(k, n) for k, n in refs) else " "

        template = _OPTIONAL.sub(keep_optional, self.command)
        argv = []
        for token in shlex.split(template):

            def sub(m: re.Match) -> str:
                kind, name = m.group(1), m.group(2)
                if kind == "inputs":
                    if name not in values:
                        raise UsageError(f"{self.path}: the command uses unknown input {name!r}")
                    return self.format_value(values[name])
                return str(outputs[name])

            argv.append(_PLACEHOLDER.sub(sub, token))
        return argv


# ------------------------------------------------------------------------------------------- job handle


def _throughput_key(plan: Any, processes: int) -> str:
    """The configuration a completed run's tokens/s is cached under (azft.throughput)."""
    from azft import throughput

    spec, inputs = plan.spec, plan.component_inputs
    model = getattr(getattr(plan, "model", None), "id", None) or str(inputs.get("model", "tiny-phi3"))
    method = getattr(spec, "method", None) or str(inputs.get("method", "lora"))
    return throughput.key(model, method, throughput.device_of(getattr(spec.local, "device", "auto")), processes)


def _outputs_it_has(outputs: dict, status: JobStatus) -> dict[str, str]:
    """A finished job's outputs; a failed or cancelled one lists only those it wrote (a folder with files)."""
    if status not in (JobStatus.FAILED, JobStatus.CANCELED):
        return dict(outputs)
    return {k: v for k, v in outputs.items() if Path(v).is_dir() and any(Path(v).iterdir())}


class LocalJob(Job):
    backend = "local"

    def __init__(self, backend: "LocalBackend", name: str):
        self._backend = backend
        self.name = check_job_name(name)  # a name becomes a path only once it passed Azure ML's name rule
        self.dir = backend.jobs_dir / name

    # state -------------------------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.dir / "state.json"

    def state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            raise UsageError(
                f"no local job named {self.name!r}",
                hint=f"local jobs live in {self._backend.jobs_dir}; `azft list --backend local`",
            ) from None

    def _write_state(self, state: dict) -> None:
        write_private(self.state_path, json.dumps(state, indent=2))

    def _exit_code(self) -> int | None:
        try:
            return int((self.dir / "exit_code").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _alive(self, state: dict) -> bool:
        proc = self._backend._children.get(self.name)
        if proc is not None:  # launched by this process: poll() also reaps it (no zombie)
            return proc.poll() is None
        pid = state.get("pid")
        if not pid:
            return False
        try:
            import psutil

            p = psutil.Process(pid)
            if state.get("pid_create_time") and abs(p.create_time() - state["pid_create_time"]) > 1.0:
                return False  # the pid was reused by an unrelated process
            return p.status() != psutil.STATUS_ZOMBIE
        except ImportError:
            try:
                os.kill(pid, 0)
                return True
            except OSError:
                return False
        except Exception:
            return False

    def _error(self) -> str | None:
        log = self.dir / "job.log"
        if not log.exists():
            return None
        lines = log.read_text(errors="replace").splitlines()[-400:]
        for line in reversed(lines):
            if ERROR_PREFIX in line:
                return line.split(ERROR_PREFIX, 1)[1].strip()
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].startswith("Traceback"):
                tail = [ln for ln in lines[i:] if ln and not ln.startswith(" ")]
                return tail[-1] if tail else lines[-1]
        return lines[-1].strip() if lines else None

    def info(self) -> JobInfo:
        state = self.state()
        code = self._exit_code()
        error = None
        if code is not None:
            if code == 0:
                status = JobStatus.COMPLETED
            elif state.get("canceled"):
                status = JobStatus.CANCELED
            else:
                status = JobStatus.FAILED
                error = self._error() or f"exited with code {code}"
        elif self._alive(state):
            status = JobStatus.CANCEL_REQUESTED if state.get("canceled") else JobStatus.RUNNING
        elif state.get("canceled"):
            status = JobStatus.CANCELED
        elif state.get("pid"):
            status = JobStatus.FAILED
            error = "the training process ended without an exit code (killed?); submit again to resume"
        else:
            status = JobStatus.NOT_STARTED
        metrics: dict[str, float] = {}
        summary = Path(state["outputs"]["metrics"]) / "metrics.json"
        if summary.exists():
            try:
                metrics = canonical(
                    {
                        k: float(v)
                        for k, v in json.loads(summary.read_text()).items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)
                    }
                )
            except ValueError:
                metrics = {}
        if status == JobStatus.COMPLETED and state.get("throughput_key") and metrics.get("tokens_per_second"):
            from azft import throughput

            throughput.record(
                state["throughput_key"], metrics["tokens_per_second"], self.name, state.get("started") or _now()
            )
        return JobInfo(
            name=self.name,
            backend="local",
            status=status,
            created=timestamp(state.get("created")),
            error=error,
            error_code=None if code in (None, 0) else str(code),
            outputs=_outputs_it_has(state.get("outputs", {}), status),
            metrics=metrics,
            mlflow_run_id=state.get("mlflow_run_id"),
            extra={
                "job_dir": str(self.dir),
                "log": str(self.dir / "job.log"),
                "pid": state.get("pid"),
                "attempt": state.get("attempt", 1),
                "command": state.get("command"),
                "exit_code": code,
            },
        )

    # actions -----------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        state = self.state()
        state["canceled"] = True
        state["canceled_at"] = _now()
        self._write_state(state)
        if self._exit_code() is not None or not self._alive(state):
            return
        pgid = int(state.get("pgid") or state["pid"])
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self._alive(state):
            time.sleep(0.2)
        if self._alive(state):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while self._alive(state):
                time.sleep(0.1)

    def logs(self, follow: bool = False) -> Iterator[str]:
        path = self.dir / "job.log"
        while follow and not path.exists() and not self.info().status.terminal:
            time.sleep(0.2)
        if not path.exists():
            return
        with path.open("r", errors="replace") as f:
            buf = ""
            while True:
                chunk = f.readline()
                if chunk:
                    buf += chunk
                    if buf.endswith("\n"):
                        yield buf.rstrip("\n")
                        buf = ""
                    continue
                if not follow:
                    break
                if self.info().status.terminal:
                    rest = f.read()
                    for line in (buf + rest).splitlines():
                        yield line
                    break
                time.sleep(0.25)
        if buf and not follow:
            yield buf

    def metrics_history(self) -> dict[str, list[tuple[int, float]]]:
        path = Path(self.state()["outputs"]["metrics"]) / "metrics.jsonl"
        history: dict[str, list[tuple[int, float]]] = {}
        if not path.exists():
            return history
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            step = int(row.get("step", 0))
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    history.setdefault(k, []).append((step, float(v)))
        return canonical(history)

    def wait(self, timeout=None, poll_interval: float = 1.0, on_update=None) -> JobInfo:
        return super().wait(timeout=timeout, poll_interval=poll_interval, on_update=on_update)


# ------------------------------------------------------------------------------------------- backend


class LocalBackend(Backend):
    name = "local"
    listed_by_default = True

    def __init__(self, home: str | Path | None = None, component: str | Path | None = None):
        self.home = Path(home).expanduser().resolve() if home else azft_home()
        self.jobs_dir = jobs_dir(self.home)
        if component:
            self.component_path = Path(component)
        else:
            from azft.resources import component_file

            self.component_path = component_file("finetune")
        self._children: dict[str, subprocess.Popen] = {}

    # --- public API -------------------------------------------------------------------------------------------
    def submit(self, plan: Any, *, force: bool = False) -> LocalJob:
        name = check_job_name(str(plan.job_name))
        if force and (self.jobs_dir / name).exists():  # a forced plan carries its own fresh suffix already
            name = self._fresh_name(name)
        job = LocalJob(self, name)
        if job.state_path.exists():
            status = job.info().status
            if status in (JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.CANCEL_REQUESTED):
                return job  # idempotent: the same plan finds the same job
            return self._launch(job, plan, resume=True)
        return self._launch(job, plan, resume=False)

    def get_job(self, name: str) -> LocalJob:
        job = LocalJob(self, name)
        job.state()  # raises a clear UsageError when there is no such job
        return job

    def list_jobs(self, limit: int = 50) -> list[JobInfo]:
        if not self.jobs_dir.is_dir():
            return []
        infos = []
        for d in self.jobs_dir.iterdir():
            if (d / "state.json").exists():
                try:
                    infos.append(LocalJob(self, d.name).info())
                except (UsageError, ValueError, KeyError):
                    continue
        infos.sort(key=lambda i: i.created or "", reverse=True)
        return infos[:limit]

    def render(self, plan: Any) -> dict[str, Any]:
        """The command line a submit runs, its process count, ZeRO stage and output folders (nothing created)."""
        import shlex

        outputs = self.outputs_for(plan, self.jobs_dir / str(plan.job_name))
        argv, nproc, stage = self.build_command(plan, outputs)
        return {"command": shlex.join(argv), "processes": nproc, "zero_stage": stage, "outputs": outputs}

    def outputs_for(self, plan: Any, job_dir: Path) -> dict[str, str]:
        """Where the model and metrics go: ``spec.local.output_dir``, else the job's ``outputs/`` folder."""
        out_root = _get(plan, "spec.local.output_dir", None)
        out_root = Path(out_root).expanduser().resolve() if out_root else job_dir / "outputs"
        return {"model_output": str(out_root / "model"), "metrics": str(out_root / "metrics")}

    # --- internals --------------------------------------------------------------------------------------------
    def _fresh_name(self, base: str) -> str:
        n = 2
        while (self.jobs_dir / f"{base}-{n}").exists():
            n += 1
        return f"{base}-{n}"

    def build_command(self, plan: Any, outputs: dict[str, str]) -> tuple[list[str], int, int]:
        """(argv, number of processes, ZeRO stage) for ``plan``: the component's command plus a launcher."""
        component = ComponentCommand(self.component_path)
        inputs = dict(plan.component_inputs)
        stage = int(_get(plan, "spec.compute.deepspeed.stage", 0) or inputs.get("deepspeed_stage") or 0)
        if stage:
            inputs["deepspeed_stage"] = stage
        nproc = int(_get(plan, "spec.local.num_processes", 1) or 1)
        if nproc < 1:
            raise UsageError(f"local.num_processes must be at least 1 (got {nproc})")
        argv = component.argv(inputs, outputs)
        if argv[:1] != ["python"] or len(argv) < 2:
            raise UsageError(f"{component.path}: the command must start with `python <script>`")
        script = str(component.code_dir / argv[1])
        rest = argv[2:]
        if stage:
            launcher = [
                sys.executable,
                "-m",
                "deepspeed.launcher.runner",
                "--num_gpus",
                str(nproc),
                "--master_port",
                str(_free_port()),
            ]
        elif nproc > 1:
            launcher = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                str(nproc),
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                str(_free_port()),
            ]
        else:
            launcher = [sys.executable, "-u"]
        return launcher + [script] + rest, nproc, stage

    def _tracking_env(self, plan: Any, job: LocalJob, state: dict) -> dict[str, str]:
        uri = getattr(plan, "tracking_uri", None) or os.environ.get("MLFLOW_TRACKING_URI")
        run_id = getattr(plan, "tracking_run_id", None) or state.get("mlflow_run_id")
        if not uri:
            db = self.home / ".azft" / "mlflow.db"
            db.parent.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{db}"
        if not run_id:
            run_id = self._create_run(uri, plan, job.name)
        env = {"MLFLOW_TRACKING_URI": uri}
        if run_id:
            env["MLFLOW_RUN_ID"] = run_id
            state["mlflow_run_id"] = run_id
        state["mlflow_tracking_uri"] = uri if "@" not in uri else uri.split("://", 1)[0] + "://<redacted>"
        return env

    def _create_run(self, uri: str, plan: Any, job_name: str) -> str | None:
        """Create the MLflow run the recipe logs into (when the orchestrator did not); None if MLflow is down."""
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            experiment = str(_get(plan, "spec.tracking.experiment", None) or "azft")
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                artifacts = None
                if uri.startswith("sqlite:///"):
                    artifacts = (self.home / ".azft" / "mlartifacts").as_uri()
                exp_id = client.create_experiment(experiment, artifact_location=artifacts)
            else:
                exp_id = exp.experiment_id
            run = client.create_run(
                exp_id, run_name=job_name, tags={"azft.backend": "local", "azft.job_name": job_name}
            )
            spec = getattr(plan, "spec", None)
            if spec is not None and hasattr(spec, "model_dump"):
                client.log_dict(run.info.run_id, spec.model_dump(mode="json"), "spec.json")
            return run.info.run_id
        except Exception as e:
            print(
                f"warning: could not create an MLflow run at {uri.split('?')[0]} ({type(e).__name__}: "
                f"{str(e)[:200]}); the job runs without MLflow and keeps metrics in its metrics folder",
                file=sys.stderr,
            )
            return None

    def _launch(self, job: LocalJob, plan: Any, *, resume: bool) -> LocalJob:
        job.dir.mkdir(parents=True, exist_ok=True)
        previous = job.state() if resume else {}
        outputs = self.outputs_for(plan, job.dir)
        for p in outputs.values():
            Path(p).mkdir(parents=True, exist_ok=True)
        argv, nproc, stage = self.build_command(plan, outputs)

        if str(plan.component_inputs.get("model", "")) == "tiny-phi3":
            from azft.tiny_phi3 import ensure_tiny_phi3

            ensure_tiny_phi3()  # build once here, not concurrently in every training process

        state = {
            "name": job.name,
            "backend": "local",
            "created": previous.get("created") or _now(),
            "started": _now(),
            "attempt": int(previous.get("attempt", 0)) + 1,
            "command": argv,
            "num_processes": nproc,
            "deepspeed_stage": stage,
            "outputs": outputs,
            "mlflow_run_id": previous.get("mlflow_run_id"),
            "throughput_key": _throughput_key(plan, nproc),
        }
        env = dict(os.environ)
        env.update(self._tracking_env(plan, job, state))
        pkg_parent = str(Path(__file__).resolve().parent.parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_parent, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("TOKENIZERS_PARALLELISM", "false")

        exit_file = job.dir / "exit_code"
        exit_file.unlink(missing_ok=True)
        log_path = job.dir / "job.log"
        with log_path.open("a") as log:
            if resume:
                log.write(
                    f"--- {_now()} attempt {state['attempt']}: starting again; the recipe resumes from its "
                    "last checkpoint ---\n"
                )
            log.write(f"$ {shlex.join(argv)}\n")
        # A shell parent records the exit code when the command ends, even after the submitting process is gone.
        wrapper = [
            "/bin/sh",
            "-c",
            '"$@"; code=$?; echo $code > "$AZFT_EXIT_FILE.tmp"; mv "$AZFT_EXIT_FILE.tmp" "$AZFT_EXIT_FILE"; exit $code',
            "azft-job",
            *argv,
        ]
        env["AZFT_EXIT_FILE"] = str(exit_file)
        with log_path.open("ab") as log:
            try:
                proc = subprocess.Popen(
                    wrapper,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=str(ComponentCommand(self.component_path).code_dir),
                    env=env,
                    start_new_session=True,
                )
            except OSError as e:
                raise JobFailedError(f"could not start the local job: {e}") from None
        self._children[job.name] = proc
        state["pid"] = proc.pid
        state["pgid"] = proc.pid  # start_new_session: the shell leads a new process group
        try:
            import psutil

            state["pid_create_time"] = psutil.Process(proc.pid).create_time()
        except Exception:
            pass
        job._write_state(state)
        return job
