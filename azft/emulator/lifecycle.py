"""Job lifecycle on a controllable clock, scripted outcomes, simulated metrics and logs.

A job's status is a pure function of the clock: it is computed when asked, so a test can move the clock
(`ManualClock.advance`) and read the new state without background threads. The standalone emulator uses a real
clock instead.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

#: The path a job takes when nothing goes wrong.
LIFECYCLE: tuple[str, ...] = ("NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed")
TERMINAL = frozenset({"Completed", "Failed", "Canceled"})

#: Error codes the emulator knows a sensible message for; any other code works too with a given message.
KNOWN_ERRORS: dict[str, str] = {
    "QuotaExceeded": "Not enough quota available for the requested VM size in this region.",
    "Unauthorized": "The identity running the job is not authorized to access the training data.",
    "ModelNotAvailableInRegion": "Fine-tuning of this model is not available in the workspace's region.",
    "OutOfMemory": "CUDA out of memory while running the training step.",
    "UserError": "The job failed because of a problem with its inputs.",
}


class Clock:
    """Seconds as a float; the real clock runs on its own."""

    def now(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        raise TypeError("a real clock cannot be advanced; create the emulator with clock='manual'")


class ManualClock(Clock):
    """A clock that only moves when told to: lifecycles become deterministic."""

    def __init__(self, start: float = 0.0):
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._t += float(seconds)


@dataclass
class Outcome:
    """How a job ends. ``kind`` is "complete", "fail" or "cancel"; ``at`` is the state in which it happens, ``after``
    the fraction of that state's duration that passes first (a job failing in Running has logged part of its steps)."""

    kind: str = "complete"
    at: str = "Running"
    error_code: str | None = None
    message: str | None = None
    after: float = 0.5  # fraction of the state ``at`` that passes before the job fails or is canceled
    diverge_after: int | None = None  # the losses rise after this step instead of falling

    def __post_init__(self) -> None:
        if self.kind not in ("complete", "fail", "cancel"):
            raise ValueError(f"outcome kind must be complete, fail or cancel, not {self.kind!r}")
        if self.at not in LIFECYCLE[:-1]:
            raise ValueError(f"outcome state must be one of {', '.join(LIFECYCLE[:-1])}, not {self.at!r}")
        if self.diverge_after is not None and (type(self.diverge_after) is not int or self.diverge_after < 1):
            raise ValueError(f"outcome 'diverge_after' is a step number (1 or more), not {self.diverge_after!r}")
        if not 0.0 <= self.after <= 1.0:
            raise ValueError(f"outcome 'after' is a fraction of the state's duration (0..1), not {self.after!r}")
        if self.kind == "fail":
            self.error_code = self.error_code or "UserError"
            self.message = self.message or KNOWN_ERRORS.get(self.error_code, f"The job failed: {self.error_code}.")


@dataclass
class EmulatedJob:
    name: str
    body: dict[str, Any]
    created_at: float
    created_wall: float
    outcome: Outcome = field(default_factory=Outcome)
    state_seconds: dict[str, float] = field(default_factory=dict)
    cancel_requested_at: float | None = None
    total_steps: int = 50
    api_version: str | None = None

    # -- timeline -------------------------------------------------------------------------------------------
    def _timeline(self) -> list[tuple[str, float]]:
        """[(state, start time)] up to and including the terminal state (without user cancellation)."""
        t = self.created_at
        out: list[tuple[str, float]] = []
        for state in LIFECYCLE[:-1]:
            out.append((state, t))
            ends_here = self.outcome.kind != "complete" and state == self.outcome.at
            t += self.state_seconds[state] * (self.outcome.after if ends_here else 1.0)
            if ends_here:
                if self.outcome.kind == "fail":
                    out.append(("Failed", t))
                else:
                    out.append(("CancelRequested", t))
                    out.append(("Canceled", t + self.state_seconds["CancelRequested"]))
                return out
        out.append(("Completed", t))
        return out

    def timeline(self) -> list[tuple[str, float]]:
        tl = self._timeline()
        c = self.cancel_requested_at
        if c is None:
            return tl
        # A user cancellation cuts the natural timeline unless the job had already ended.
        kept = [(s, t) for s, t in tl if t <= c]
        if kept and kept[-1][0] in TERMINAL:
            return kept
        kept = [(s, t) for s, t in kept if s != "CancelRequested"]
        return kept + [("CancelRequested", c), ("Canceled", c + self.state_seconds["CancelRequested"])]

    def status(self, now: float) -> str:
        current = "NotStarted"
        for state, start in self.timeline():
            if start <= now:
                current = state
        return current

    def failed(self, now: float) -> bool:
        return self.status(now) == "Failed"

    def error(self, now: float) -> dict[str, str] | None:
        if self.status(now) == "Failed":
            return {"code": self.outcome.error_code or "UserError", "message": self.outcome.message or ""}
        return None

    # -- metrics ----------------------------------------------------------------------------------------------
    def steps_done(self, now: float) -> int:
        """Training steps logged so far: they accrue while the job is Running, all of them once it completes."""
        tl = self.timeline()
        start = next((t for s, t in tl if s == "Running"), None)
        if start is None or now < start:
            return 0
        if any(s == "Completed" and t <= now for s, t in tl):
            return self.total_steps
        end = next((t for s, t in tl if t > start), math.inf)
        duration = self.state_seconds["Running"]
        if duration <= 0:
            return self.total_steps
        return int(self.total_steps * min(1.0, (min(now, end) - start) / duration))

    def settings(self) -> str:
        """The job's training settings as sent (serverless ``hyperParameters``, a pipeline's literal inputs), without
        data locations: what makes two jobs of one spec (a sweep's trials) train differently."""
        found: list[tuple[str, Any]] = []

        def walk(node: Any, path: str) -> None:
            if isinstance(node, dict):
                if node.get("jobInputType") == "literal" and "value" in node:
                    found.append((path, node["value"]))
                    return
                for key, value in node.items():
                    if key == "hyperParameters" and isinstance(value, dict):
                        found.extend((f"{path}.{k}", v) for k, v in value.items())
                    elif key not in ("tags", "displayName", "experimentName", "outputs"):
                        walk(value, f"{path}.{key}")
            elif isinstance(node, list):
                for i, item in enumerate(node):
                    walk(item, f"{path}[{i}]")

        walk(self.body.get("properties", {}), "")
        return json.dumps(sorted(found, key=lambda kv: kv[0]), default=str)

    def metrics(self, now: float) -> dict[str, list[tuple[int, float]]]:
        """A decaying training loss every step and an evaluation loss every tenth step, deterministic per job name
        without its generated suffix and per training settings: the same spec gives the same curves wherever its data
        files sit, and a sweep's trials (one name, different settings) end at different losses. A job scripted to
        diverge (``Outcome.diverge_after``) has its losses rise after that step."""
        n = self.steps_done(now)
        rng = random.Random(zlib.crc32((re.sub(r"-[0-9a-f]{10}$", "", self.name) + self.settings()).encode()))
        floor = 0.35 + 0.3 * rng.random()
        tau = max(1.0, self.total_steps / 4)
        loss: list[tuple[int, float]] = []
        eval_loss: list[tuple[int, float]] = []
        turn = self.outcome.diverge_after
        for step in range(1, n + 1):
            base = floor + 2.1 * math.exp(-min(step, turn or step) / tau)
            if turn is not None and step > turn:  # a diverging run: the loss climbs from where it turned
                base += 0.15 * (step - turn)
            loss.append((step, round(base + rng.gauss(0.0, 0.03), 5)))
            if step % 10 == 0 or step == self.total_steps:
                eval_loss.append((step, round(base + 0.08 + rng.gauss(0.0, 0.01), 5)))
        out: dict[str, list[tuple[int, float]]] = {"loss": loss}
        if eval_loss:
            out["eval_loss"] = eval_loss
        return out

    def logs(self, now: float) -> list[str]:
        lines: list[str] = []
        metrics = self.metrics(now)
        by_step = dict(metrics["loss"])
        for state, start in self.timeline():
            if start > now:
                break
            lines.append(f"[{start - self.created_at:8.1f}s] status: {state}")
            if state == "Running":
                for step in range(1, self.steps_done(now) + 1):
                    if step % 5 == 0 or step == 1:
                        lines.append(f"step {step}/{self.total_steps} loss={by_step[step]:.4f}")
            if state == "Failed":
                err = self.error(now) or {}
                lines.append(f"error: {err.get('code')}: {err.get('message')}")
            if state == "Canceled":
                lines.append("the job was canceled")
        return lines
