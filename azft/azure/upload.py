"""Upload local data files once, to content-addressed paths on the workspace's default datastore.

Each file goes to ``azft/data/<sha256>/<filename>`` as a block blob staged in fixed-size blocks with deterministic
block ids, then committed with the hash in its metadata. A second upload of the same content finds the committed
blob and sends nothing; an interrupted upload resumes from the blocks the service already holds (uncommitted blocks
are kept by Azure Storage for a week). Authentication is the same token credential as everything else (bearer over
HTTPS), so no account key or SAS is needed.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol

from azft.azure.errors import azure_errors, map_error
from azft.azure.workspace import CA_BUNDLE_ENV, redact
from azft.digest import file_sha256  # the same content hash the plan shows
from azft.errors import AzftError, AzureError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from azft.plan import DataFile

BLOB_ENDPOINT_ENV = "AZFT_BLOB_ENDPOINT"
DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024
#: The datastore azft uploads to, and the folder in it: ``azft/data/<sha256>/<filename>``.
DATASTORE = "workspaceblobstore"
PREFIX = "azft/data"
HASH_METADATA_KEY = "azft_sha256"


@dataclass(frozen=True)
class DatastoreInfo:
    """Where a datastore's blobs live: the account URL (``https://<account>.blob.<suffix>`` or a path-style
    emulator URL) and the container."""

    account_url: str
    container: str
    datastore: str = DATASTORE

    def uri(self, blob_name: str) -> str:
        return f"azureml://datastores/{self.datastore}/paths/{blob_name}"


class UploadResult(dict):
    """``{local path: azureml:// URI}`` plus what the upload did."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_uploaded = 0
        self.files_uploaded = 0
        self.files_skipped = 0
        self.blocks_reused = 0
        self.blob_names: dict[str, str] = {}

    @property
    def uris(self) -> dict[str, str]:
        return dict(self)


def blob_path(sha256: str, filename: str) -> str:
    """Where a local file lands in the datastore: its content hash decides, so identical data uploads once."""
    return f"{PREFIX}/{sha256}/{filename}"


def datastore_uri(sha256: str, filename: str, datastore: str = DATASTORE) -> str:
    """The ``azureml://`` URI a job reads a file uploaded to ``blob_path`` from."""
    return f"azureml://datastores/{datastore}/paths/{blob_path(sha256, filename)}"


def block_id(sha256: str, index: int) -> str:
    """Deterministic block id: the same file always stages the same ids, so a retry can skip staged blocks.
    All ids of a blob have the same length, as the service requires."""
    return base64.b64encode(f"{sha256[:32]}-{index:08d}".encode()).decode()


def datastore_info(ml_client: Any, name: str | None = None, blob_endpoint: str | None = None) -> DatastoreInfo:
    """The blob location of a datastore (the workspace default when ``name`` is None).

    ``blob_endpoint`` (or ``AZFT_BLOB_ENDPOINT``) replaces the account URL, for a storage emulator such as Azurite.
    """
    with azure_errors("reading the workspace's datastore"):
        ds = ml_client.datastores.get(name) if name else ml_client.datastores.get_default()
    account = getattr(ds, "account_name", None)
    container = getattr(ds, "container_name", None)
    if not account or not container:
        raise AzureError(
            f"datastore {ds.name!r} is not an Azure Blob datastore (no account/container)",
            hint="uploads go to a blob datastore such as workspaceblobstore",
        )
    endpoint = blob_endpoint or os.environ.get(BLOB_ENDPOINT_ENV)
    if not endpoint:
        protocol = getattr(ds, "protocol", None) or "https"
        suffix = getattr(ds, "endpoint", None) or "core.windows.net"
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    return DatastoreInfo(account_url=endpoint.rstrip("/"), container=container, datastore=ds.name)


def container_client_for(
    info: DatastoreInfo, credential: Any, *, connection_verify: str | None = None, retry_total: int = 6, **kwargs: Any
):
    from azure.storage.blob import ContainerClient

    if not info.account_url.lower().startswith("https://"):
        raise AzureError(f"refusing to send credentials to {info.account_url}: blob uploads need HTTPS")
    verify = connection_verify or os.environ.get(CA_BUNDLE_ENV)
    if verify:
        kwargs["connection_verify"] = verify
    return ContainerClient(info.account_url, info.container, credential=credential, retry_total=retry_total, **kwargs)


def _existing_hash(blob: Any) -> tuple[str | None, int | None]:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        props = blob.get_blob_properties()
    except ResourceNotFoundError:
        return None, None
    return (props.metadata or {}).get(HASH_METADATA_KEY), props.size


def _staged_blocks(blob: Any) -> dict[str, int]:
    """Uncommitted blocks already on the service for this blob: {block id: size}."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        committed, uncommitted = blob.get_block_list("all")
    except ResourceNotFoundError:
        return {}
    return {b.id: b.size for b in list(uncommitted or []) + list(committed or [])}


def upload_files(
    paths: Iterable[str | os.PathLike[str]],
    target: Any = None,
    credential: Any = None,
    progress: bool = True,
    *,
    account_url: str | None = None,
    container: str | None = None,
    datastore: str = DATASTORE,
    block_size: int = DEFAULT_BLOCK_SIZE,
    max_concurrency: int = 4,
    connection_verify: str | None = None,
    console: Any = None,
    sha256s: Mapping[str, str] | None = None,
) -> UploadResult:
    """Upload ``paths`` to content-addressed blobs; returns ``{path: azureml:// URI}`` with byte counts.

    ``target`` is a ``DatastoreInfo`` (a container client is built with ``credential``) or an existing
    ``azure.storage.blob.ContainerClient`` (URIs then name ``datastore``); or give ``account_url`` and
    ``container`` instead of ``target``. ``sha256s`` ({path: hex digest}) passes content hashes already computed
    (the plan hashes every data file), so a large file is not read twice just to be hashed.
    """
    if target is None:
        if not account_url or not container:
            raise TypeError("upload_files needs a target, or account_url and container")
        target = DatastoreInfo(account_url=account_url.rstrip("/"), container=container, datastore=datastore)
    files = [Path(p) for p in paths]
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: no such file to upload")
    if block_size <= 0 or block_size > 4000 * 1024 * 1024:
        raise ValueError("block_size must be between 1 byte and 4000 MiB")
    client, info = _client_and_info(target, credential, datastore, connection_verify)
    result = UploadResult()
    plans = _blobs_to_send(files, client, info, sha256s or {}, result)
    _send(
        plans, info, result, block_size=block_size, max_concurrency=max_concurrency, progress=progress, console=console
    )
    return result


def _client_and_info(
    target: Any, credential: Any, datastore: str, connection_verify: str | None
) -> tuple[Any, DatastoreInfo]:
    """The container client to upload with and where it points, from a DatastoreInfo or a ContainerClient."""
    if isinstance(target, DatastoreInfo):
        if credential is None:
            raise AzureError("uploading needs a credential (the same one the ML client uses)")
        return container_client_for(target, credential, connection_verify=connection_verify), target
    url = str(getattr(target, "url", ""))
    info = DatastoreInfo(
        account_url=url[: -len(target.container_name)].rstrip("/") or url,
        container=target.container_name,
        datastore=datastore,
    )
    return target, info


def _blobs_to_send(
    files: list[Path], client: Any, info: DatastoreInfo, sha256s: Mapping[str, str], result: UploadResult
) -> list[tuple[Path, str, str, Any]]:
    """Record every file's URI in ``result``; the (file, sha256, blob name, blob client) of those the datastore
    does not hold yet (a committed blob with the same hash and size is skipped)."""
    plans = []
    with azure_errors(f"checking blobs in container {info.container!r}"):
        for f in files:
            sha = sha256s.get(str(f)) or file_sha256(f)
            name = blob_path(sha, f.name)
            blob = client.get_blob_client(name)
            existing, size = _existing_hash(blob)
            result[str(f)] = info.uri(name)
            result.blob_names[str(f)] = name
            if existing == sha and size == f.stat().st_size:
                result.files_skipped += 1
                continue
            plans.append((f, sha, name, blob))
    return plans


def _send(
    plans: list[tuple[Path, str, str, Any]],
    info: DatastoreInfo,
    result: UploadResult,
    *,
    block_size: int,
    max_concurrency: int,
    progress: bool,
    console: Any,
) -> None:
    """Upload the planned files one after the other behind one progress bar; counts go to ``result``."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    todo_bytes = sum(f.stat().st_size for f, *_ in plans)
    progress_bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not progress or not plans,
        transient=False,
        console=console,
    )
    with progress_bar:
        task = progress_bar.add_task(f"uploading {len(plans)} file(s)", total=todo_bytes)
        for f, sha, _name, blob in plans:
            try:
                sent, reused = _upload_one(
                    f, sha, blob, block_size, max_concurrency, lambda n: progress_bar.advance(task, n)
                )
            except Exception as e:
                _raise_upload_error(e, f, info)
            result.bytes_uploaded += sent
            result.blocks_reused += reused
            result.files_uploaded += 1


def _raise_upload_error(e: Exception, f: Path, info: DatastoreInfo) -> None:
    from azure.core.exceptions import AzureError as CoreAzureError
    from azure.core.exceptions import ResourceNotFoundError

    if isinstance(e, AzftError):
        raise e
    if isinstance(e, ResourceNotFoundError) and "ContainerNotFound" in str(getattr(e, "error_code", "") or e):
        raise AzureError(
            f"container {info.container!r} does not exist at {info.account_url} (uploading {f.name})",
            hint="the workspace's default datastore points at a missing container",
        ) from None
    if isinstance(e, CoreAzureError):
        raise map_error(e, f"uploading {f.name}") from None
    if isinstance(e, OSError):
        raise DataError(f"{f}: cannot read ({e.strerror or e})") from None
    raise AzureError(f"upload of {f.name} failed: {redact(str(e))}") from None


def _upload_one(path: Path, sha: str, blob: Any, block_size: int, max_concurrency: int, advance) -> tuple[int, int]:
    """Stage missing blocks, commit. Returns (bytes sent, blocks reused)."""
    from azure.storage.blob import BlobBlock, ContentSettings

    size = path.stat().st_size
    n_blocks = max(1, -(-size // block_size))
    ids = [block_id(sha, i) for i in range(n_blocks)]
    staged = _staged_blocks(blob)
    missing: list[int] = []
    reused = 0
    for i, bid in enumerate(ids):
        expected = min(block_size, size - i * block_size) if size else 0
        if staged.get(bid) == expected and expected > 0:
            reused += 1
            advance(expected)
        else:
            missing.append(i)

    def stage(i: int) -> int:
        with open(path, "rb") as fh:
            fh.seek(i * block_size)
            data = fh.read(block_size)
        blob.stage_block(ids[i], data, length=len(data), validate_content=True)
        advance(len(data))
        return len(data)

    sent = 0
    if size == 0:
        blob.upload_blob(b"", overwrite=True, metadata={HASH_METADATA_KEY: sha})
        return 0, 0
    if missing:
        if max_concurrency > 1 and len(missing) > 1:
            with ThreadPoolExecutor(max_workers=max_concurrency) as pool:
                sent = sum(pool.map(stage, missing))
        else:
            sent = sum(stage(i) for i in missing)
    ctype = "application/jsonl" if path.suffix in (".jsonl", ".ndjson") else None
    blob.commit_block_list(
        [BlobBlock(block_id=b) for b in ids],
        metadata={HASH_METADATA_KEY: sha, "azft_source_name": path.name},
        content_settings=ContentSettings(content_type=ctype) if ctype else None,
    )
    return sent, reused


# ---------------------------------------------------------------------------------------------------------------
# uploaders a backend can be given
class Uploader(Protocol):
    """Puts local data files at their content-addressed paths; skips what is already there."""

    def upload(self, files: list["DataFile"], datastore: DatastoreInfo) -> UploadResult: ...


class BlobUploader:
    """Uploads through azure-storage-blob with the workspace credential (resumable, progress bar on stderr)."""

    def __init__(
        self,
        credential: Any = None,
        blob_endpoint: Optional[str] = None,
        progress: bool = True,
        connection_verify: Any = None,
    ):
        self.credential = credential
        self.blob_endpoint = blob_endpoint
        self.progress = progress
        self.connection_verify = connection_verify

    def upload(self, files: list["DataFile"], datastore: DatastoreInfo) -> UploadResult:
        local = [d for d in files if d.local and d.path]
        if not local:
            return UploadResult()
        kwargs: dict[str, Any] = {}
        if self.progress:
            from rich.console import Console

            kwargs["console"] = Console(stderr=True)  # stdout carries `--output json`; progress goes to stderr
        target = DatastoreInfo(
            (self.blob_endpoint or datastore.account_url).rstrip("/"), datastore.container, datastore.datastore
        )
        try:
            return upload_files(
                [d.path for d in local if d.path],
                target,
                self.credential,
                self.progress,
                connection_verify=self.connection_verify,
                sha256s={d.path: d.sha256 for d in local if d.path and d.sha256},
                **kwargs,
            )
        except AzftError:
            raise
        except Exception as exc:
            raise map_error(exc, "uploading the data files") from None


class DirectoryUploader:
    """A local directory standing in for the datastore (the mock backend without a storage emulator)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def upload(self, files: list["DataFile"], datastore: DatastoreInfo) -> UploadResult:
        import shutil

        result = UploadResult()
        for d in files:
            if not d.local or not d.path or not d.sha256:
                continue
            name = Path(d.path).name
            target = self.root / datastore.container / blob_path(d.sha256, name)
            result[d.path] = datastore_uri(d.sha256, name, datastore.datastore)
            if target.is_file() and target.stat().st_size == d.size:
                result.files_skipped += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            shutil.copyfile(d.path, tmp)
            tmp.replace(target)
            result.bytes_uploaded += target.stat().st_size
            result.files_uploaded += 1
        return result
