"""Fixtures for the backend tests: small specs with real data files, and backends aimed at the shared emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CHAT_ROWS = [
    {
        "messages": [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": f"{i + i}."},
        ]
    }
    for i in range(12)
]


@pytest.fixture
def make_spec(tmp_path):
    """Write a spec (and its training file) and load it: make_spec(name=..., **yaml sections as dicts)."""
    from ruamel.yaml import YAML

    from azft.spec import load_spec

    def make(name: str = "demo", model: str = "phi-4-mini-instruct", rows: int = 12, **sections):
        train = tmp_path / f"{name}-train.jsonl"
        train.write_text("".join(json.dumps(r) + "\n" for r in CHAT_ROWS[:rows]))
        doc = {"name": name, "model": model, "data": {"train": train.name}}
        doc.update(sections)
        path = tmp_path / f"{name}.yaml"
        with open(path, "w") as f:
            YAML().dump(doc, f)
        return load_spec(path)

    return make


@pytest.fixture
def plan_for():
    from azft import api

    def plan(spec, backend: str):
        p = api.plan(spec, backend)
        assert p.ok, p.verdict.reasons
        return p

    return plan


@pytest.fixture
def azure_backend(emulator, tmp_path):
    """A real maas/maap backend over HTTPS to the emulator, uploading into a local directory datastore."""
    from azft.azure.upload import DirectoryUploader

    def make(target: str = "maas", uploader=None, retry_total: int = 4, **kwargs):
        client = emulator.make_ml_client(retry_total=retry_total, retry_backoff_factor=0.01)
        uploader = uploader or DirectoryUploader(tmp_path / "datastore")
        kwargs.setdefault("ca_bundle", emulator.ca_pem_path)  # the SDK's own code-upload clients trust it too
        if target == "maas":
            from azft.backends.maas import MaasBackend

            return MaasBackend(ml_client=client, uploader=uploader, **kwargs)
        from azft.backends.maap import MaapBackend

        return MaapBackend(ml_client=client, uploader=uploader, **kwargs)

    return make


@pytest.fixture
def azurite_uploader(azurite, emulator):
    """Uploads into Azurite (HTTPS, bearer token) with the emulator's default datastore container created there."""
    import uuid

    from azure.storage.blob import ContainerClient

    from azft.azure.upload import BlobUploader
    from azft.emulator.credential import FakeCredential

    def make():
        name = f"azureml-blobstore-{uuid.uuid4().hex[:12]}"
        client = ContainerClient(
            azurite.blob_endpoint,
            name,
            credential=FakeCredential(),
            connection_verify=str(azurite.ca.ca_pem_path),
            retry_total=0,
        )
        client.create_container()
        emulator.blob_container = name
        up = BlobUploader(
            credential=FakeCredential(),
            blob_endpoint=azurite.blob_endpoint,
            progress=False,
            connection_verify=str(azurite.ca.ca_pem_path),
        )
        return up, client

    return make


def blob_names(container) -> list[str]:
    return sorted(b.name for b in container.list_blobs())


def same_file(path: str | Path) -> bytes:
    return Path(path).read_bytes()
