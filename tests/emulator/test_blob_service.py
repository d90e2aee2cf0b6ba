"""The emulator's Blob service through the real azure-storage-blob client: SAS checks, the operations code and
data uploads use, and a directory-backed store that a later process reads back."""

from __future__ import annotations

import pytest


def _sas_container(emulator, container="code-upload", permissions="racwl"):
    from azure.storage.blob import ContainerClient

    emulator.blob_store.create_container(container, exist_ok=True)
    url = emulator.blob_service.sas_url(emulator.base_url, container, permissions)
    return ContainerClient.from_container_url(url, connection_verify=emulator.ca_pem_path, retry_total=0), url


def test_sas_container_client_uploads_lists_and_reads_back(emulator):
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

    client, _ = _sas_container(emulator)
    with pytest.raises(ResourceNotFoundError):
        client.get_blob_client("src/train.py").get_blob_properties()
    client.upload_blob("src/train.py", b"print('hi')\n", validate_content=True)
    client.upload_blob("src/lib/util.py", b"x = 1\n")
    client.upload_blob("other.txt", b"o")
    with pytest.raises(ResourceExistsError):  # overwrite=False sends If-None-Match: *
        client.upload_blob("src/train.py", b"again")
    client.get_blob_client("src/train.py").set_blob_metadata({"upload_status": "completed", "name": "n"})
    props = client.get_blob_client("src/train.py").get_blob_properties()
    assert props.size == len(b"print('hi')\n") and props.metadata == {"upload_status": "completed", "name": "n"}
    assert client.download_blob("src/train.py").readall() == b"print('hi')\n"
    assert [b.name for b in client.list_blobs(name_starts_with="src/")] == ["src/lib/util.py", "src/train.py"]
    listed = {b.name: b.metadata for b in client.list_blobs(include=["metadata"])}
    assert listed["src/train.py"] == {"upload_status": "completed", "name": "n"}
    assert [b.name for b in client.walk_blobs(name_starts_with="src/", delimiter="/")] == ["src/lib/", "src/train.py"]
    # the recorded requests carry the SAS without its signature
    assert all(r.query.get("sig") == "[redacted]" for r in emulator.requests if r.route == "blob")


def test_large_blobs_go_in_blocks_and_a_bad_or_narrow_sas_is_refused(emulator):
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.storage.blob import ContainerClient

    _, url = _sas_container(emulator)
    client = ContainerClient.from_container_url(
        url,
        connection_verify=emulator.ca_pem_path,
        retry_total=0,
        max_single_put_size=256 * 1024,
        max_block_size=256 * 1024,
        max_single_get_size=256 * 1024,
        max_chunk_get_size=300 * 1024,
    )
    data = bytes(range(256)) * 4096  # 1 MiB: Put Block x4 + Put Block List; read back in ranges
    client.upload_blob("big.bin", data)
    assert [size for _, size in emulator.blob_store.properties("code-upload", "big.bin").blocks] == [256 * 1024] * 4
    assert client.download_blob("big.bin").readall() == data

    forged = ContainerClient.from_container_url(
        url.replace("sig=", "sig=AAAA"), connection_verify=emulator.ca_pem_path, retry_total=0
    )
    with pytest.raises(ClientAuthenticationError):
        forged.upload_blob("x.txt", b"x")
    read_only, _ = _sas_container(emulator, permissions="rl")
    with pytest.raises(HttpResponseError) as e:
        read_only.upload_blob("x.txt", b"x")
    assert e.value.status_code == 403
    _sas_container(emulator, container="another-one")
    wrong_container = ContainerClient.from_container_url(
        url.replace("/code-upload?", "/another-one?"), connection_verify=emulator.ca_pem_path, retry_total=0
    )
    with pytest.raises(ClientAuthenticationError):  # a SAS is valid for its own container only
        wrong_container.upload_blob("x.txt", b"x")
    assert not emulator.blob_store.exists("code-upload", "x.txt")


def test_start_pending_upload_hands_out_a_sas_the_sdk_accepts(ml_client, emulator):
    from azure.ai.ml._utils._asset_utils import get_storage_info_for_non_registry_asset

    info = get_storage_info_for_non_registry_asset(
        ml_client._code._service_client, emulator.workspace_name, "my-code", "1", emulator.resource_group
    )
    assert info["sas_uri"].startswith(info["blob_uri"] + "?") and "sig=" in info["sas_uri"]
    (req,) = emulator.requests_to("startPendingUpload$", "POST")
    assert req.status == 200 and req.body["pendingUploadType"] == "TemporaryBlobReference"


def test_a_directory_store_outlives_the_emulator(tmp_path, test_ca):
    from azft.emulator import Emulator

    with Emulator(ca=test_ca, blob_root=tmp_path / "blobs") as first:
        client, _ = _sas_container(first)
        client.upload_blob("src/a.py", b"a = 1\n", metadata={"upload_status": "completed"})
    with Emulator(ca=test_ca, blob_root=tmp_path / "blobs") as second:  # a new process, a new port and SAS key
        client, _ = _sas_container(second)
        props = client.get_blob_client("src/a.py").get_blob_properties()
        assert props.metadata == {"upload_status": "completed"}
        assert client.download_blob("src/a.py").readall() == b"a = 1\n"
    assert (tmp_path / "blobs" / "code-upload" / "src" / "a.py").read_bytes() == b"a = 1\n"
