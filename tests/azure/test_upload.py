"""Content-addressed, resumable uploads to Azurite over HTTPS with bearer tokens (the production credential path)."""

from __future__ import annotations

import hashlib
import io

import pytest
from rich.console import Console

from azft.azure.upload import (
    DatastoreInfo,
    blob_path,
    block_id,
    datastore_info,
    upload_files,
)
from azft.emulator.credential import FakeCredential
from azft.errors import AzureError, DataError


def make_file(path, size: int, seed: int = 0):
    # Deterministic non-repeating bytes, so every block has different content.
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    path.write_bytes(bytes(out[:size]))
    return path


def test_upload_twice_second_time_sends_zero_bytes(blob_container, tmp_path):
    train = make_file(tmp_path / "train.jsonl", 300_000, seed=1)
    valid = make_file(tmp_path / "valid.jsonl", 1_000, seed=2)
    console = Console(file=io.StringIO(), force_terminal=False, width=100)
    first = upload_files([train, valid], blob_container, progress=True, block_size=64 * 1024, console=console)
    assert first.bytes_uploaded == 301_000 and first.files_uploaded == 2
    sha = hashlib.sha256(train.read_bytes()).hexdigest()
    assert first[str(train)] == f"azureml://datastores/workspaceblobstore/paths/azft/data/{sha}/train.jsonl"
    blob = blob_container.get_blob_client(blob_path(sha, "train.jsonl"))
    assert blob.download_blob().readall() == train.read_bytes()
    props = blob.get_blob_properties()
    assert props.metadata["azft_sha256"] == sha and props.content_settings.content_type == "application/jsonl"
    assert "uploading 2 file(s)" in console.file.getvalue()

    second = upload_files([train, valid], blob_container, progress=False)
    assert second.bytes_uploaded == 0 and second.files_skipped == 2 and second.files_uploaded == 0
    assert dict(second) == dict(first)


def test_changed_content_goes_to_a_new_path(blob_container, tmp_path):
    f = make_file(tmp_path / "train.jsonl", 10_000, seed=3)
    a = upload_files([f], blob_container, progress=False)
    make_file(f, 10_000, seed=4)
    b = upload_files([f], blob_container, progress=False)
    assert a[str(f)] != b[str(f)] and b.bytes_uploaded == 10_000


def test_interrupted_upload_resumes_from_staged_blocks(blob_container, tmp_path):
    block = 64 * 1024
    f = make_file(tmp_path / "big.jsonl", 5 * block + 123, seed=5)
    data = f.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    blob = blob_container.get_blob_client(blob_path(sha, f.name))
    # What an interrupted earlier run leaves behind: the first three blocks staged, nothing committed.
    for i in range(3):
        blob.stage_block(block_id(sha, i), data[i * block : (i + 1) * block])

    result = upload_files([f], blob_container, progress=False, block_size=block)
    assert result.blocks_reused == 3
    assert result.bytes_uploaded == len(data) - 3 * block
    assert blob.download_blob().readall() == data


def test_interrupted_by_an_error_then_resumed(blob_container, tmp_path, monkeypatch):
    """A failure part-way (here: the connection dies after two blocks, simulated by making the third
    ``stage_block`` raise, since Azurite cannot drop connections on demand) leaves staged blocks that the
    next run reuses."""
    from azure.core.exceptions import ServiceResponseError
    from azure.storage.blob import BlobClient

    block = 32 * 1024
    f = make_file(tmp_path / "data.jsonl", 4 * block, seed=6)
    real_stage = BlobClient.stage_block
    calls = {"n": 0}

    def flaky_stage(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ServiceResponseError("Connection reset by peer")
        return real_stage(self, *args, **kwargs)

    monkeypatch.setattr(BlobClient, "stage_block", flaky_stage)
    with pytest.raises(AzureError) as e:
        upload_files([f], blob_container, progress=False, block_size=block, max_concurrency=1)
    assert "could not reach Azure while uploading data.jsonl" in e.value.message
    monkeypatch.setattr(BlobClient, "stage_block", real_stage)

    result = upload_files([f], blob_container, progress=False, block_size=block)
    assert result.blocks_reused == 2 and result.bytes_uploaded == 2 * block


def test_upload_through_the_workspace_default_datastore(
    emulator, ml_client, azurite, blob_container, tmp_path, monkeypatch
):
    """The full production path: datastore from the (emulated) workspace, blob endpoint redirected to Azurite,
    the same token credential, HTTPS verified with the test CA."""
    emulator.blob_container = blob_container.container_name
    monkeypatch.setenv("AZFT_BLOB_ENDPOINT", azurite.blob_endpoint)
    monkeypatch.setenv("AZFT_AZURE_CA_BUNDLE", str(azurite.ca.ca_pem_path))
    info = datastore_info(ml_client)
    assert info == DatastoreInfo(azurite.blob_endpoint, blob_container.container_name, "workspaceblobstore")
    f = make_file(tmp_path / "train.jsonl", 2048, seed=7)
    cred = FakeCredential()
    first = upload_files([f], info, cred, progress=False)
    assert first.bytes_uploaded == 2048
    assert any(scope == ("https://storage.azure.com/.default",) for scope in cred.calls)
    assert upload_files([f], info, cred, progress=False).bytes_uploaded == 0


def test_keyword_form_and_missing_container(azurite, tmp_path):
    f = make_file(tmp_path / "train.jsonl", 100, seed=8)
    with pytest.raises(AzureError) as e:
        upload_files(
            [f],
            account_url=azurite.blob_endpoint,
            container="no-such-container",
            credential=FakeCredential(),
            progress=False,
            connection_verify=str(azurite.ca.ca_pem_path),
        )
    assert "no-such-container" in e.value.message


def test_missing_local_file_is_a_data_error(blob_container, tmp_path):
    with pytest.raises(DataError) as e:
        upload_files([tmp_path / "nope.jsonl"], blob_container, progress=False)
    assert "nope.jsonl" in e.value.message


def test_refuses_plain_http_for_credentials(tmp_path):
    f = make_file(tmp_path / "t.jsonl", 10)
    with pytest.raises(AzureError):
        upload_files([f], DatastoreInfo("http://127.0.0.1:1/devstoreaccount1", "c"), FakeCredential(), progress=False)


def test_hashes_from_the_plan_are_not_computed_again(blob_container, tmp_path, monkeypatch):
    """The plan already hashed every data file; the upload reuses those digests instead of reading the file twice."""
    import azft.azure.upload as up

    f = make_file(tmp_path / "train.jsonl", 20_000, seed=5)
    sha = hashlib.sha256(f.read_bytes()).hexdigest()

    def no_rehash(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(up, "file_sha256", no_rehash)
    result = upload_files([f], blob_container, progress=False, sha256s={str(f): sha})
    assert result[str(f)].endswith(f"/azft/data/{sha}/train.jsonl") and result.bytes_uploaded == 20_000
