"""Calling a deployed endpoint: its URL and key resolved from the deployment record (the local server's key file,
or Azure's ``listKeys``), requests sent through an azure-core pipeline with retries (429, 408 and 5xx, with
backoff and ``Retry-After``; inference POSTs are safe to repeat), the key only in the ``Authorization`` header:
never logged (azure-core's logging policy redacts it), never in an error message.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from azft.deploy import records
from azft.errors import AzureError, UsageError

RETRY_TOTAL = 4


def _retry_policy(total: int, backoff: float) -> Any:
    from azure.core.pipeline.policies import RetryPolicy

    class InferenceRetry(RetryPolicy):
        # a generation request changes nothing on the server: POST is retried like GET
        _method_whitelist = frozenset({"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST"})

    return InferenceRetry(retry_total=total, retry_backoff_factor=backoff, retry_backoff_max=20)


@dataclass
class Endpoint:
    """An endpoint ready to call: ``chat(messages)`` → (text, raw answer)."""

    name: str
    kind: str
    url: str
    _client: Any
    _request: Any

    def chat(self, messages: list[dict], *, max_tokens: int = 64, temperature: float = 0.0) -> tuple[str, dict]:
        from azft.chat_wire import reply_text

        messages = [{"role": m["role"], "content": m["content"]} for m in messages]  # nothing but the wire fields
        if self.kind == "online":  # Azure ML's chat-completion scoring shape
            body: dict[str, Any] = {
                "input_data": {
                    "input_string": messages,
                    "parameters": {"max_new_tokens": max_tokens, "temperature": temperature},
                }
            }
        else:
            body = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        try:
            resp = self._client.send_request(self._request("POST", self.url, json=body))
        except Exception as e:  # transport errors after the retries: no URL query, no header, in the message
            raise AzureError(
                f"calling endpoint {self.name}: {type(e).__name__}",
                hint="check that the deployment is up: `azft endpoints list`",
            ) from None
        if resp.status_code >= 400:
            detail = _error_message(resp)
            raise AzureError(
                f"endpoint {self.name} answered HTTP {resp.status_code}: {detail}",
                hint=f"401: the key changed or the endpoint was recreated; 5xx/429 were retried {RETRY_TOTAL} times",
            )
        answer = resp.json()
        try:
            return reply_text(answer), answer
        except ValueError as e:
            raise AzureError(f"endpoint {self.name}: {e}") from None


def _error_message(resp: Any) -> str:
    try:
        err = resp.json().get("error") or {}
        return str(err.get("message") or err.get("code") or "")[:300]
    except (ValueError, AttributeError):
        return (resp.text() or "")[:200]


@contextlib.contextmanager
def connect(name: str, *, retry_total: int = RETRY_TOTAL, retry_backoff: float = 0.5) -> Iterator[Endpoint]:
    """The recorded deployment ``name``, ready to call (for the mock, inside a session of its workspace)."""
    dep = records.get(name)
    if dep is None:
        raise UsageError(f"no deployment named {name!r} is recorded here", hint="`azft endpoints list` shows them")
    if dep.expired():
        raise UsageError(f"deployment {name!r} passed its TTL ({dep.ttl}) and is being deleted")
    if dep.kind == "local":
        from azft.deploy import local

        if not local.ours(dep.pid, dep.name):
            raise UsageError(
                f"the local server of {name!r} is not running",
                hint=f"`azft endpoints delete {name}` and `azft deploy {dep.job}` again",
            )
        yield _endpoint(dep, dep.url, local.key(dep.name), None, retry_total, retry_backoff)
    else:
        from azft.deploy import cloud

        with cloud.workspace_client(dep.backend, dep.options) as ml:
            url = cloud.scoring_url(ml, dep.kind, dep.name)
            key = cloud.endpoint_key(ml, dep.kind, dep.name)
            verify = _ca_bundle(ml)
            yield _endpoint(dep, url, key, verify, retry_total, retry_backoff)
    records.touch(name)


def _ca_bundle(ml: Any) -> Optional[str]:
    """The CA the workspace client trusts besides the public roots (the emulator's), for the scoring call too."""
    import os

    cfg = getattr(ml, "_kwargs", None) or {}
    return cfg.get("connection_verify") or os.environ.get("AZFT_AZURE_CA_BUNDLE") or None


def _endpoint(
    dep: records.Deployment, url: str, key: str, verify: Optional[str], retry_total: int, retry_backoff: float
) -> Endpoint:
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import HeadersPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest

    transport = RequestsTransport(connection_verify=verify) if verify else RequestsTransport()
    policies = [
        HeadersPolicy({"Authorization": f"Bearer {key}", "Content-Type": "application/json"}),
        _retry_policy(retry_total, retry_backoff),
    ]
    if dep.kind == "online":
        policies.insert(0, HeadersPolicy({"azureml-model-deployment": "azft"}))
    client = PipelineClient(base_url=url, policies=policies, transport=transport)
    return Endpoint(dep.name, dep.kind, url, client, HttpRequest)


def predict_file(name: str, data: str, out: str, *, max_new_tokens: int = 64, task: str = "chat-completion") -> dict:
    """``azft predict --endpoint``: each JSONL prompt sent to the endpoint, answers written in input order, in the
    same row shape as local ``azft predict``."""
    import os
    from pathlib import Path

    from azft.trained.generate import read_prompts
    from azft.trained.job import recipe_module

    if not Path(data).is_file():
        raise UsageError(f"{data}: no such file")
    ft_data = recipe_module("ft_data")
    try:
        prompts = read_prompts(data, task)
    except ft_data.DataFormatError as e:
        from azft.errors import DataError

        raise DataError(str(e)) from None
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tokens = 0
    with connect(name) as ep, tmp.open("w", encoding="utf-8") as f:
        for p in prompts:
            text, answer = ep.chat(p.messages, max_tokens=max_new_tokens)
            usage = answer.get("usage") or {}
            finish = ((answer.get("choices") or [{}])[0] or {}).get("finish_reason")
            row: dict[str, Any] = {
                "line": p.line,
                "messages": p.messages,
                "response": text,
                "finish_reason": finish,
                "completion_tokens": usage.get("completion_tokens"),
            }
            tokens += int(usage.get("completion_tokens") or 0)
            if p.reference is not None:
                row["reference"] = p.reference
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, out_path)
    return {"rows": len(prompts), "out": str(out_path), "model": f"endpoint {name}", "completion_tokens": tokens}
