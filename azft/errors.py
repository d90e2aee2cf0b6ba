"""Errors users see. Each carries the exit code a CI job can branch on."""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_INVALID = 2
EXIT_CANCELLED = 3
EXIT_AZURE = 4
EXIT_INTERNAL = 5  # an unexpected exception inside azft: a bug (report it; --debug shows the traceback)

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_JOB_FAILED: "job failed",
    EXIT_INVALID: "invalid spec/data/usage",
    EXIT_CANCELLED: "cancelled or timed out",
    EXIT_AZURE: "Azure/auth/transport error",
    EXIT_INTERNAL: "internal error in azft (a bug)",
}


@dataclass
class Problem:
    """One problem found in a file: where it is, what is wrong and how to fix it."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"

    def location(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or ""

    def render(self) -> str:
        loc = self.location()
        parts = [f"{loc}: " if loc else ""]
        if self.field:
            parts.append(f"{self.field}: ")
        parts.append(self.message)
        if self.hint:
            parts.append(f" — {self.hint}")
        return "".join(parts)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class AzftError(Exception):
    """Base error: a message a person can act on, and an exit code. Messages, hints and problems are scrubbed of
    anything that looks like a credential (azft.redact) before they are kept."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, hint: str | None = None, problems: list[Problem] | None = None):
        from azft.redact import redact_text

        message = redact_text(message)
        super().__init__(message)
        self.message = message
        self.hint = redact_text(hint) if hint else hint
        self.problems: list[Problem] = list(problems or [])
        for p in self.problems:
            p.message = redact_text(p.message)
            p.hint = redact_text(p.hint) if p.hint else p.hint

    def to_dict(self) -> dict:
        return {
            "ok": False,
            "error": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
            "problems": [p.to_dict() for p in self.problems],
        }

    def __str__(self) -> str:
        return self.message


class SpecError(AzftError):
    """The spec file is invalid; `problems` lists every problem at once."""

    exit_code = EXIT_INVALID


class DataError(AzftError):
    exit_code = EXIT_INVALID


class IncompatibleError(AzftError):
    """The spec is valid but cannot run on the chosen backend (retired model, method not offered...)."""

    exit_code = EXIT_INVALID


class UsageError(AzftError):
    exit_code = EXIT_INVALID


class AzureError(AzftError):
    """Azure, authentication or transport failure."""

    exit_code = EXIT_AZURE


class JobFailedError(AzftError):
    exit_code = EXIT_JOB_FAILED


class InternalError(AzftError):
    """An unexpected exception inside azft: a bug, not the user's input nor Azure."""

    exit_code = EXIT_INTERNAL


class JobCancelledError(AzftError):
    exit_code = EXIT_CANCELLED


@dataclass
class Verdict:
    """Whether a spec can run on a backend, and why not."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
