"""azft: one job spec for fine-tuning Phi models on Azure Machine Learning.

Public API (imported lazily so `import azft` stays cheap)::

    spec = azft.load_spec("spec.yaml")
    plan = azft.plan(spec, backend="maas")      # the dry-run: verdict, estimate, what would be sent
    job = azft.submit(plan)                     # side effects; returns a Job handle
    job.wait(); azft.get_job(job.name).info()
"""

#: The one place the version is written: the build reads it (pyproject.toml), `azft --version` prints it.
__version__ = "0.2.0"

__all__ = ["load_spec", "plan", "submit", "get_job", "list_jobs", "__version__"]


def __getattr__(name):
    if name == "load_spec":
        from azft.spec import load_spec

        return load_spec
    if name == "plan":
        from azft.api import plan

        return plan
    if name in ("submit", "get_job", "list_jobs"):
        from azft import api

        return getattr(api, name)
    raise AttributeError(name)
