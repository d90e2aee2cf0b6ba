"""The endpoints' inference routes: what a deployed model answers, behind the endpoint's key.

Serverless endpoints answer ``POST {inferenceEndpoint.uri}/v1/chat/completions`` (also ``/chat/completions``);
managed online endpoints answer ``POST {scoringUri}`` with the chat-completions shape or Azure ML's ``input_data``
scoring shape (``azft.chat_wire``), routed by the endpoint's traffic or the ``azureml-model-deployment`` header.
Both need ``Authorization: Bearer <key>`` with a key ``listKeys`` returns.

The model behind them is a deterministic stand-in, not a network: the reply is a fixed function of the deployment,
the messages and ``max_tokens`` (words drawn from a SHA-256 of them), so tests can compare answers exactly. Token
counts are whitespace-separated words. A deployment that is not ``Succeeded`` yet, or an endpoint without traffic,
answers as Azure does (no valid deployment to route to).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from azft.chat_wire import ChatRequestError, parse_request, response
from azft.emulator.routes.base import Route
from azft.emulator.routes.resources import INFERENCE, endpoint_keys
from azft.emulator.wire import HttpError, RecordedRequest, Response

if TYPE_CHECKING:  # pragma: no cover
    from azft.emulator.server import Emulator

_WORDS = ("fine", "tuned", "phi", "answer", "azure", "model", "token", "reply", "data", "helpful", "short", "clear")


def stand_in_reply(deployment: str, messages: list[dict[str, str]], max_tokens: int) -> tuple[str, str]:
    """(text, finish_reason) of the emulator's deterministic stand-in model."""
    digest = hashlib.sha256(repr((deployment, messages)).encode()).digest()
    n = 4 + digest[0] % 8
    words = [_WORDS[b % len(_WORDS)] for b in digest[1 : 1 + n]]
    finish = "stop"
    if len(words) > max_tokens:
        words, finish = words[:max_tokens], "length"
    return " ".join(words), finish


def key_ok(emu: Emulator, groups: dict[str, str], authorization: str | None) -> bool:
    """Whether ``authorization`` carries a key of the endpoint the inference path names (and that endpoint exists)."""
    kind, name = groups["kind"], groups["name"]
    collection = "serverlessEndpoints" if kind == "serverless" else "onlineEndpoints"
    if name not in emu.store.collection(collection):
        return False
    given = (authorization or "").removeprefix("Bearer ").strip()
    return bool(given) and given in endpoint_keys(emu, kind, name).values()


def _answer(emu: Emulator, rec: RecordedRequest, deployment: str) -> Response:
    try:
        req = parse_request(rec.body)
    except ChatRequestError as e:
        return Response(400, e.body())
    text, finish = stand_in_reply(deployment, req.messages, req.max_tokens)
    prompt_tokens = sum(len(m["content"].split()) for m in req.messages)
    return Response(
        200,
        response(
            req,
            text,
            model=deployment,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(text.split()),
            finish_reason=finish,
        ),
    )


def serverless_chat(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    res = emu.store.get("serverlessEndpoints", m["name"], "Serverless endpoint")
    if res["properties"].get("provisioningState") not in ("Succeeded", None):
        raise HttpError(409, "EndpointNotReady", f"Serverless endpoint '{m['name']}' is not ready yet.")
    model = str((res["properties"].get("modelSettings") or {}).get("modelId", m["name"]))
    return _answer(emu, rec, model.rstrip("/").split("/models/")[-1] or m["name"])


def online_score(emu: Emulator, rec: RecordedRequest, m: re.Match[str]) -> Response:
    endpoint = emu.store.get("onlineEndpoints", m["name"], "Online endpoint")
    deployments = emu.store.collection(f"onlineEndpoints/{m['name']}/deployments")
    wanted = next((v for k, v in rec.headers.items() if k.lower() == "azureml-model-deployment"), None)
    if wanted is None:
        traffic = {k: v for k, v in (endpoint["properties"].get("traffic") or {}).items() if v}
        wanted = max(traffic, key=lambda k: traffic[k]) if traffic else None
    dep = deployments.get(wanted or "")
    if dep is None or dep["properties"].get("provisioningState") != "Succeeded":
        raise HttpError(
            424 if dep is not None else 503,
            "NoValidDeployment",
            "No valid deployments to route to. Please check that the endpoint has at least one "
            "deployment with positive weight values or use a deployment specific header to route.",
        )
    return _answer(emu, rec, f"{m['name']}/{wanted}")


_S = INFERENCE + r"/(?P<kind>serverless)/(?P<name>[^/]+)"
_O = INFERENCE + r"/(?P<kind>online)/(?P<name>[^/]+)"
ROUTES = [
    Route("POST", "^" + _S + r"(/v1)?/chat/completions$", "inference.serverless", serverless_chat, auth="key"),
    Route("POST", "^" + _O + r"/score$", "inference.online", online_score, auth="key"),
]
