"""Long CI waits keep authenticating: the credential asks the runner for a fresh OIDC assertion on each token."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from azft.azure.workspace import build_credential, ci_federated_credential


def test_outside_ci_there_is_no_federated_credential():
    assert ci_federated_credential({}) is None
    assert ci_federated_credential({"AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t"}) is None


def test_github_actions_assertion_is_fetched_from_the_runner_each_time():
    """A real loopback HTTP server stands in for the runner's ACTIONS_ID_TOKEN_REQUEST_URL."""
    calls = []

    class Runner(BaseHTTPRequestHandler):
        def do_GET(self):
            calls.append((self.path, self.headers.get("Authorization")))
            body = json.dumps({"value": f"oidc-token-{len(calls)}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Runner)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            "AZURE_CLIENT_ID": "client",
            "AZURE_TENANT_ID": "tenant",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{server.server_port}/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token",
        }
        cred = ci_federated_credential(env)
        assert type(cred).__name__ == "ClientAssertionCredential"
        # Entra ID cannot be reached from here, so the assertion callable azure-identity would call before each token
        # exchange is invoked directly (azure-identity keeps it as `_func`).
        assert cred._func() == "oidc-token-1"
        assert calls[0][0].endswith("audience=api://AzureADTokenExchange")
        assert calls[0][1] == "bearer runner-request-token"
        assert cred._func() == "oidc-token-2"  # a fresh assertion each time
    finally:
        server.shutdown()


def test_build_credential_chains_ci_then_default(monkeypatch):
    env = {
        "AZURE_CLIENT_ID": "c",
        "AZURE_TENANT_ID": "t",
        "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "sc",
        "SYSTEM_ACCESSTOKEN": "x",
    }
    cred = build_credential(endpoint=None, env=env)
    assert type(cred).__name__ == "ChainedTokenCredential"
    assert [type(c).__name__ for c in cred.credentials][0] == "AzurePipelinesCredential"
