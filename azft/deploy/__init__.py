"""Deployed models and the guardrails that keep them from billing forgotten.

``records`` (the local record of every deployment, its TTL, and the clock), ``costs`` (hourly prices with their
sources, serving memory and instance sizes), ``cloud`` (serverless and managed online endpoints through
``MLClient``, on Azure or the mock workspace), ``local`` (the chat-completions server on 127.0.0.1 serving a local
job's model, as a detached process), ``guard`` (what every azft command runs first: expired deployments deleted,
warnings), ``client`` (calling an endpoint with retries), ``service`` (deploy / list / delete / gc, the operations
the CLI calls). Nothing here imports azure.ai.ml, torch or transformers at module level.
"""
