"""azft: one job spec for fine-tuning Phi models on Azure Machine Learning.

Public API (imported lazily so `import azft` stays cheap)::

    spec = azft.load_spec("spec.yaml")
    plan = azft.plan(spec, backend="maas")      # the dry-run: verdict, estimate, what would be sent
    job = azft.submit(plan)                     # side effects; returns a Job handle
    info = azft.wait(job)                       # follow it to its end and close its MLflow run
    azft.get_job(job.name).info()

Types: ``JobSpec``, ``Plan``, ``Job``, ``JobInfo``, ``JobStatus``; errors: ``AzftError`` and its subclasses
(``SpecError``, ``DataError``, ``IncompatibleError``, ``UsageError``, ``AzureError``, ``JobFailedError``,
``JobCancelledError``, ``InternalError``), each with the ``exit_code`` the CLI uses.
"""

import sys
import types

#: The one place the version is written: the build reads it (pyproject.toml), `azft --version` prints it.
__version__ = "0.2.0"

_API = ("load_spec", "plan", "submit", "get_job", "list_jobs", "wait", "finish_tracking")
_TYPES = {
    "JobSpec": "azft.spec",
    "Plan": "azft.plan",
    "Job": "azft.backends.base",
    "JobInfo": "azft.backends.base",
    "JobStatus": "azft.backends.base",
    "Problem": "azft.errors",
    "AzftError": "azft.errors",
    "SpecError": "azft.errors",
    "DataError": "azft.errors",
    "IncompatibleError": "azft.errors",
    "UsageError": "azft.errors",
    "AzureError": "azft.errors",
    "JobFailedError": "azft.errors",
    "JobCancelledError": "azft.errors",
    "InternalError": "azft.errors",
}

__all__ = [*_API, *_TYPES, "__version__"]


def __getattr__(name):
    import importlib

    if name == "load_spec":
        from azft.spec import load_spec

        return load_spec
    if name in _API:
        return getattr(importlib.import_module("azft.api"), name)
    if name in _TYPES:
        return getattr(importlib.import_module(_TYPES[name]), name)
    raise AttributeError(f"module 'azft' has no attribute {name!r}")


class _Package(types.ModuleType):
    """Importing the submodule ``azft.plan`` must not replace the function ``azft.plan`` (nor ``azft.api``'s others)."""

    def __setattr__(self, name, value):
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
