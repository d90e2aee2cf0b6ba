"""A minimal Azure Blob service for the emulator: what azure-ai-ml's code upload and azft's own uploads use.

Served on the emulator's HTTPS port under ``/_blob/<account>/<container>/<blob>``. azure-storage-blob treats a
``127.0.0.1`` host as path-style (the account is the first path segment), so ``ContainerClient.from_container_url``
of ``https://127.0.0.1:PORT/_blob/<account>/<container>?<sas>`` addresses blobs at
``/_blob/<account>/<container>/<name>``: the account part is ``_blob/<account>``.

Operations (Blob REST API names): Create Container, Get Container Properties, List Blobs (prefix, delimiter,
``include=metadata``), Put Blob, Put Block, Put Block List, Get Block List, Get Blob (with ranges),
Get Blob Properties, Set Blob Metadata. Errors are the service's XML bodies with ``x-ms-error-code``.

Authentication is a container SAS minted by the emulator (``sig`` is an HMAC of the container, permissions and
expiry under a per-emulator key, checked on every request) or a bearer token. Blobs live in memory, or in a
directory (``root/<container>/<blob name>``, metadata in ``root/.blobmeta/``) so a workspace kept on disk between
processes (the mock backend) keeps its uploads — the same layout the mock's directory datastore uses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree
from xml.sax.saxutils import escape

BLOB_PREFIX = "/_blob"
SAS_VERSION = "2021-08-06"
STORAGE_VERSION = "2025-11-05"
SAS_LIFETIME_S = 3600
_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_META_DIR = ".blobmeta"


class BlobError(Exception):
    """A Blob service error: HTTP status, the service's error code and a message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> bytes:
        return (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{escape(self.code)}</Code>'
            f"<Message>{escape(self.message)}</Message></Error>"
        ).encode()


@dataclass
class BlobProps:
    size: int
    content_md5: str  # base64
    etag: str
    last_modified: float
    created: float
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    blocks: list[tuple[str, int]] = field(default_factory=list)  # committed (block id, size)

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "content_md5": self.content_md5,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "created": self.created,
            "content_type": self.content_type,
            "metadata": self.metadata,
            "blocks": [list(b) for b in self.blocks],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BlobProps:
        return cls(
            size=d["size"],
            content_md5=d["content_md5"],
            etag=d["etag"],
            last_modified=d["last_modified"],
            created=d.get("created", d["last_modified"]),
            content_type=d.get("content_type") or "application/octet-stream",
            metadata=dict(d.get("metadata") or {}),
            blocks=[(b[0], int(b[1])) for b in d.get("blocks") or []],
        )


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _etag() -> str:
    return f'"0x{secrets.token_hex(8).upper()}"'


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _check_name(name: str) -> str:
    parts = name.split("/")
    if (
        not name
        or len(name) > 1024
        or "\x00" in name
        or any(p in ("", ".", "..") for p in parts[:-1])
        or parts[-1] in ("", ".", "..")
    ):
        raise BlobError(400, "InvalidResourceName", f"The specified blob name {name!r} is not valid here.")
    return name


class BlobStore:
    """Containers of block blobs, in memory or under ``root``. Thread-safe."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root) if root is not None else None
        self._lock = threading.RLock()
        self._containers: dict[str, float] = {}
        self._data: dict[tuple[str, str], bytes] = {}
        self._props: dict[tuple[str, str], BlobProps] = {}
        self._uncommitted: dict[tuple[str, str], dict[str, bytes]] = {}

    # -- containers ------------------------------------------------------------------------------------------
    def create_container(self, container: str, exist_ok: bool = False) -> bool:
        if not _CONTAINER_RE.match(container):
            raise BlobError(400, "InvalidResourceName", f"The specified container name {container!r} is not valid.")
        with self._lock:
            if self.container_exists(container):
                if exist_ok:
                    return False
                raise BlobError(409, "ContainerAlreadyExists", "The specified container already exists.")
            if self.root is not None:
                (self.root / container).mkdir(parents=True, exist_ok=True)
            self._containers[container] = time.time()
            return True

    def containers(self) -> list[str]:
        with self._lock:
            names = set(self._containers) | {c for c, _ in self._props}
            if self.root is not None and self.root.is_dir():
                names |= {p.name for p in self.root.iterdir() if p.is_dir() and _CONTAINER_RE.match(p.name)}
            return sorted(names)

    def container_exists(self, container: str) -> bool:
        with self._lock:
            if container in self._containers:
                return True
            return (
                self.root is not None
                and _CONTAINER_RE.match(container) is not None
                and (self.root / container).is_dir()
            )

    def _need_container(self, container: str) -> None:
        if not self.container_exists(container):
            raise BlobError(404, "ContainerNotFound", "The specified container does not exist.")

    # -- storage primitives (memory or directory) ----------------------------------------------------------------
    def _file(self, container: str, name: str) -> Path:
        assert self.root is not None
        return self.root / container / name

    def _meta_file(self, container: str, name: str) -> Path:
        assert self.root is not None
        return self.root / _META_DIR / container / (name + ".json")

    def _read_props(self, container: str, name: str) -> BlobProps | None:
        key = (container, name)
        if self.root is None:
            return self._props.get(key)
        f = self._file(container, name)
        if not f.is_file():
            return None
        meta = self._meta_file(container, name)
        if meta.is_file():
            try:
                return BlobProps.from_json(json.loads(meta.read_text()))
            except (OSError, ValueError, KeyError):
                pass
        # a file put there by another writer (the mock's directory datastore): describe it from its bytes
        data = f.read_bytes()
        st = f.stat()
        return BlobProps(
            size=len(data),
            content_md5=_md5_b64(data),
            etag=f'"0x{st.st_mtime_ns:016X}"',
            last_modified=st.st_mtime,
            created=st.st_mtime,
        )

    def _write(self, container: str, name: str, data: bytes | None, props: BlobProps) -> None:
        key = (container, name)
        if self.root is None:
            if data is not None:
                self._data[key] = data
            self._props[key] = props
            return
        if data is not None:
            f = self._file(container, name)
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f.name + f".{secrets.token_hex(4)}.part")
            tmp.write_bytes(data)
            os.replace(tmp, f)
        meta = self._meta_file(container, name)
        meta.parent.mkdir(parents=True, exist_ok=True)
        tmp = meta.with_name(meta.name + f".{secrets.token_hex(4)}.part")
        tmp.write_text(json.dumps(props.to_json()))
        os.replace(tmp, meta)

    def _read_data(self, container: str, name: str) -> bytes:
        if self.root is None:
            return self._data[(container, name)]
        return self._file(container, name).read_bytes()

    # -- blobs -----------------------------------------------------------------------------------------------
    def properties(self, container: str, name: str) -> BlobProps:
        with self._lock:
            self._need_container(container)
            props = self._read_props(container, _check_name(name))
            if props is None:
                raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
            return props

    def exists(self, container: str, name: str) -> bool:
        with self._lock:
            return self.container_exists(container) and self._read_props(container, name) is not None

    def get(self, container: str, name: str) -> tuple[bytes, BlobProps]:
        with self._lock:
            props = self.properties(container, name)
            return self._read_data(container, name), props

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
        if_none_match: str | None = None,
        blocks: list[tuple[str, int]] | None = None,
    ) -> BlobProps:
        with self._lock:
            self._need_container(container)
            _check_name(name)
            existing = self._read_props(container, name)
            if if_none_match == "*" and existing is not None:
                raise BlobError(409, "BlobAlreadyExists", "The specified blob already exists.")
            now = time.time()
            props = BlobProps(
                size=len(data),
                content_md5=_md5_b64(data),
                etag=_etag(),
                last_modified=now,
                created=existing.created if existing else now,
                content_type=content_type or "application/octet-stream",
                metadata=dict(metadata or {}),
                blocks=list(blocks or []),
            )
            self._write(container, name, data, props)
            self._uncommitted.pop((container, name), None)
            return props

    def set_metadata(self, container: str, name: str, metadata: dict[str, str]) -> BlobProps:
        with self._lock:
            props = self.properties(container, name)
            props.metadata = dict(metadata)
            props.etag = _etag()
            props.last_modified = time.time()
            self._write(container, name, None, props)
            return props

    def stage_block(self, container: str, name: str, block_id: str, data: bytes) -> None:
        with self._lock:
            self._need_container(container)
            _check_name(name)
            try:
                base64.b64decode(block_id, validate=True)
            except ValueError:
                raise BlobError(400, "InvalidQueryParameterValue", "The block id is not valid base64.") from None
            staged = self._uncommitted.setdefault((container, name), {})
            lengths = {len(b) for b in staged}
            if lengths and len(block_id) not in lengths:
                raise BlobError(400, "InvalidBlobOrBlock", "All block ids of a blob must have the same length.")
            staged[block_id] = data

    def block_list(self, container: str, name: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """(committed, uncommitted) blocks as (id, size)."""
        with self._lock:
            self._need_container(container)
            props = self._read_props(container, _check_name(name))
            staged = self._uncommitted.get((container, name), {})
            if props is None and not staged:
                raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
            committed = list(props.blocks) if props else []
            return committed, [(k, len(v)) for k, v in staged.items()]

    def commit(self, container: str, name: str, ids: list[tuple[str, str]], **kwargs: Any) -> BlobProps:
        """Put Block List: ``ids`` are (list kind, block id) with kind Latest, Uncommitted or Committed."""
        with self._lock:
            self._need_container(container)
            staged = self._uncommitted.get((container, name), {})
            existing = self._read_props(container, name)
            committed_data: dict[str, bytes] = {}
            if existing is not None and existing.blocks:
                data = self._read_data(container, name)
                pos = 0
                for bid, size in existing.blocks:
                    committed_data[bid] = data[pos : pos + size]
                    pos += size
            parts: list[bytes] = []
            blocks: list[tuple[str, int]] = []
            for kind, bid in ids:
                if kind in ("Latest", "Uncommitted") and bid in staged:
                    chunk = staged[bid]
                elif kind in ("Latest", "Committed") and bid in committed_data:
                    chunk = committed_data[bid]
                else:
                    raise BlobError(400, "InvalidBlockList", "The specified block list is invalid.")
                parts.append(chunk)
                blocks.append((bid, len(chunk)))
            return self.put(container, name, b"".join(parts), blocks=blocks, **kwargs)

    def list(self, container: str, prefix: str = "") -> list[tuple[str, BlobProps]]:
        with self._lock:
            self._need_container(container)
            if self.root is None:
                names = sorted(n for (c, n) in self._props if c == container and n.startswith(prefix))
            else:
                base = self.root / container
                names = sorted(
                    p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file() and ".part" not in p.name
                )
                names = [n for n in names if n.startswith(prefix)]
            out = []
            for n in names:
                props = self._read_props(container, n)
                if props is not None:
                    out.append((n, props))
            return out

    def clear(self) -> None:
        with self._lock:
            self._containers.clear()
            self._data.clear()
            self._props.clear()
            self._uncommitted.clear()


# ------------------------------------------------------------------------------------------------------------
# SAS
# ------------------------------------------------------------------------------------------------------------


class SasSigner:
    """Container SAS tokens signed with a per-emulator key (never written to disk or logs)."""

    def __init__(self, account: str):
        self.account = account
        self._key = secrets.token_bytes(32)

    def _sign(self, container: str, permissions: str, expiry: str) -> str:
        msg = "\n".join((permissions, expiry, f"/blob/{self.account}/{container}", SAS_VERSION, "c")).encode()
        return base64.b64encode(hmac.new(self._key, msg, hashlib.sha256).digest()).decode()

    def token(self, container: str, permissions: str = "racwl", lifetime_s: int = SAS_LIFETIME_S) -> str:
        now = datetime.now(timezone.utc)
        start = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        expiry = (now + timedelta(seconds=lifetime_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return urlencode(
            {
                "sv": SAS_VERSION,
                "st": start,
                "se": expiry,
                "sr": "c",
                "sp": permissions,
                "sig": self._sign(container, permissions, expiry),
            }
        )

    def check(self, query: dict[str, str], container: str, need: str) -> None:
        """Raise 403 AuthenticationFailed / AuthorizationPermissionMismatch unless the SAS allows ``need``."""
        sig, sp, se = query.get("sig", ""), query.get("sp", ""), query.get("se", "")
        if query.get("sr") != "c" or not hmac.compare_digest(sig, self._sign(container, sp, se)):
            raise BlobError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the "
                "value of the Authorization header or the SAS signature is formed correctly.",
            )
        try:
            expiry = datetime.strptime(se, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise BlobError(403, "AuthenticationFailed", "The SAS expiry time is malformed.") from None
        if expiry < datetime.now(timezone.utc):
            raise BlobError(
                403,
                "AuthenticationFailed",
                "Signed expiry time has to be after signed start time and the current time: the SAS has expired.",
            )
        if any(p not in sp for p in need):
            raise BlobError(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            )


# ------------------------------------------------------------------------------------------------------------
# The REST surface
# ------------------------------------------------------------------------------------------------------------


@dataclass
class BlobResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _blob_headers(props: BlobProps) -> dict[str, str]:
    h = {
        "ETag": props.etag,
        "Last-Modified": http_date(props.last_modified),
        "x-ms-creation-time": http_date(props.created),
        "x-ms-blob-type": "BlockBlob",
        "x-ms-lease-state": "available",
        "x-ms-lease-status": "unlocked",
        "x-ms-server-encrypted": "true",
        "Accept-Ranges": "bytes",
        "Content-MD5": props.content_md5,
    }
    for k, v in props.metadata.items():
        h[f"x-ms-meta-{k}"] = v
    return h


def _metadata_from(headers: dict[str, str]) -> dict[str, str]:
    return {k[len("x-ms-meta-") :]: v for k, v in headers.items() if k.lower().startswith("x-ms-meta-")}


def _range(headers: dict[str, str], size: int) -> tuple[int, int] | None:
    value = headers.get("x-ms-range") or headers.get("range")
    if not value:
        return None
    m = re.match(r"bytes=(\d+)-(\d*)$", value.strip())
    if not m:
        raise BlobError(400, "InvalidRange", f"The range {value!r} is not valid.")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size > 0 or (size == 0 and start > 0):
        raise BlobError(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
    return start, min(end, size - 1)


def _xml_blob(name: str, p: BlobProps, with_metadata: bool) -> str:
    meta = ""
    if with_metadata:
        meta = "<Metadata>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in p.metadata.items()) + "</Metadata>"
    return (
        f"<Blob><Name>{escape(name)}</Name><Properties>"
        f"<Creation-Time>{http_date(p.created)}</Creation-Time>"
        f"<Last-Modified>{http_date(p.last_modified)}</Last-Modified><Etag>{escape(p.etag)}</Etag>"
        f"<Content-Length>{p.size}</Content-Length><Content-Type>{escape(p.content_type)}</Content-Type>"
        f"<Content-MD5>{p.content_md5}</Content-MD5><BlobType>BlockBlob</BlobType>"
        f"<AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred>"
        f"<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
        f"<ServerEncrypted>true</ServerEncrypted></Properties>{meta}</Blob>"
    )


class BlobService:
    """Dispatches ``/_blob/<account>/<container>[/<blob>]`` requests to a ``BlobStore``."""

    def __init__(self, store: BlobStore, account: str):
        self.store = store
        self.account = account
        self.signer = SasSigner(account)

    def container_url(self, base_url: str, container: str) -> str:
        return f"{base_url}{BLOB_PREFIX}/{self.account}/{container}"

    def sas_url(self, base_url: str, container: str, permissions: str = "racwl") -> str:
        return f"{self.container_url(base_url, container)}?{self.signer.token(container, permissions)}"

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        authorization: str | None,
    ) -> BlobResponse:
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            resp = self._handle(method, path, query, lower, body, authorization)
        except BlobError as e:
            resp = BlobResponse(
                e.status,
                e.body() if method != "HEAD" else b"",
                {"x-ms-error-code": e.code, "Content-Type": "application/xml"},
            )
        resp.headers.setdefault("x-ms-version", lower.get("x-ms-version") or STORAGE_VERSION)
        resp.headers.setdefault("Date", http_date(time.time()))
        return resp

    def _handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        authorization: str | None,
    ) -> BlobResponse:
        rest = path[len(BLOB_PREFIX) :].lstrip("/")
        account, _, rest = rest.partition("/")
        container, _, name = rest.partition("/")
        if account != self.account:
            raise BlobError(404, "ResourceNotFound", f"The storage account {account!r} does not exist here.")
        if not container:
            raise BlobError(400, "InvalidUri", "Account-level operations are not supported by the emulator.")
        comp, restype = query.get("comp"), query.get("restype")
        need = "r"
        if method == "PUT":
            need = "w" if name else "c"
        elif method == "GET" and not name and comp == "list":
            need = "l"
        if (authorization or "").startswith("Bearer "):
            pass  # data-plane bearer tokens are accepted as they are by the rest of the emulator
        elif "sig" in query:
            self.signer.check(query, container, need)
        else:
            raise BlobError(
                401 if not authorization else 403,
                "NoAuthenticationInformation",
                "Server failed to authenticate the request. Please refer to the information in the "
                "www-authenticate header.",
            )

        if not name:
            return self._container_op(method, container, query, comp, restype)
        if method in ("GET", "HEAD") and comp is None:
            return self._get_blob(method, container, name, headers)
        if method == "PUT" and comp is None:
            return self._put_blob(container, name, headers, body)
        if method == "PUT" and comp == "block":
            self._check_md5(headers, body)
            self.store.stage_block(container, name, query.get("blockid", ""), body)
            return BlobResponse(201, headers={"x-ms-request-server-encrypted": "true", "Content-MD5": _md5_b64(body)})
        if method == "PUT" and comp == "blocklist":
            return self._put_block_list(container, name, headers, body)
        if method == "GET" and comp == "blocklist":
            return self._get_block_list(container, name, query)
        if method == "PUT" and comp == "metadata":
            props = self.store.set_metadata(container, name, _metadata_from(headers))
            return BlobResponse(
                200,
                headers={
                    "ETag": props.etag,
                    "Last-Modified": http_date(props.last_modified),
                    "x-ms-request-server-encrypted": "true",
                },
            )
        raise BlobError(
            400,
            "UnsupportedHttpVerb" if comp is None else "UnsupportedQueryParameter",
            f"{method} with comp={comp} is not supported by the emulator's blob service.",
        )

    # -- containers ------------------------------------------------------------------------------------------
    def _container_op(
        self, method: str, container: str, query: dict[str, str], comp: str | None, restype: str | None
    ) -> BlobResponse:
        if method == "PUT" and restype == "container" and comp is None:
            self.store.create_container(container)
            return BlobResponse(201, headers={"ETag": _etag(), "Last-Modified": http_date(time.time())})
        if method in ("GET", "HEAD") and restype == "container" and comp is None:
            if not self.store.container_exists(container):
                raise BlobError(404, "ContainerNotFound", "The specified container does not exist.")
            return BlobResponse(
                200,
                headers={
                    "ETag": '"0x1"',
                    "Last-Modified": http_date(time.time()),
                    "x-ms-lease-state": "available",
                    "x-ms-lease-status": "unlocked",
                    "x-ms-has-immutability-policy": "false",
                    "x-ms-has-legal-hold": "false",
                },
            )
        if method == "GET" and comp == "list":
            return self._list(container, query)
        raise BlobError(
            400,
            "UnsupportedQueryParameter",
            f"{method} on a container with restype={restype} comp={comp} is not supported.",
        )

    def _list(self, container: str, query: dict[str, str]) -> BlobResponse:
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter") or ""
        include = {s.strip() for s in (query.get("include") or "").split(",") if s.strip()}
        max_results = int(query.get("maxresults") or 5000)
        marker = query.get("marker") or ""
        items = [(n, p) for n, p in self.store.list(container, prefix) if n > marker or not marker]
        entries: list[str] = []
        seen_prefixes: set[str] = set()
        next_marker = ""
        count = 0
        for n, p in items:
            if count >= max_results:
                next_marker = n
                break
            if delimiter:
                cut = n.find(delimiter, len(prefix))
                if cut >= 0:
                    bp = n[: cut + len(delimiter)]
                    if bp not in seen_prefixes:
                        seen_prefixes.add(bp)
                        entries.append(f"<BlobPrefix><Name>{escape(bp)}</Name></BlobPrefix>")
                        count += 1
                    continue
            entries.append(_xml_blob(n, p, "metadata" in include))
            count += 1
        xml = (
            f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="/_blob/{self.account}/" '
            f'ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix>'
            f"<MaxResults>{max_results}</MaxResults>"
            + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
            + f"<Blobs>{''.join(entries)}</Blobs><NextMarker>{escape(next_marker)}</NextMarker>"
            "</EnumerationResults>"
        )
        return BlobResponse(200, xml.encode(), {"Content-Type": "application/xml"})

    # -- blobs -----------------------------------------------------------------------------------------------
    @staticmethod
    def _check_md5(headers: dict[str, str], body: bytes) -> None:
        sent = headers.get("content-md5")
        if sent and sent != _md5_b64(body):
            raise BlobError(
                400,
                "Md5Mismatch",
                "The MD5 value specified in the request did not match the MD5 value calculated by the server.",
            )

    def _get_blob(self, method: str, container: str, name: str, headers: dict[str, str]) -> BlobResponse:
        if method == "HEAD":
            props = self.store.properties(container, name)
            h = _blob_headers(props)
            h["Content-Type"] = props.content_type
            h["Content-Length"] = str(props.size)
            return BlobResponse(200, b"", h)
        data, props = self.store.get(container, name)
        h = _blob_headers(props)
        h["Content-Type"] = props.content_type
        rng = _range(headers, len(data))
        if rng is None:
            return BlobResponse(200, data, h)
        start, end = rng
        h["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        chunk = data[start : end + 1]
        if (headers.get("x-ms-range-get-content-md5") or "").lower() == "true":
            h["Content-MD5"] = _md5_b64(chunk)
        else:
            h.pop("Content-MD5", None)
            h["x-ms-blob-content-md5"] = props.content_md5
        return BlobResponse(206, chunk, h)

    def _put_blob(self, container: str, name: str, headers: dict[str, str], body: bytes) -> BlobResponse:
        if (headers.get("x-ms-blob-type") or "BlockBlob") != "BlockBlob":
            raise BlobError(400, "InvalidHeaderValue", "Only block blobs are supported by the emulator.")
        self._check_md5(headers, body)
        props = self.store.put(
            container,
            name,
            body,
            metadata=_metadata_from(headers),
            content_type=headers.get("x-ms-blob-content-type"),
            if_none_match=headers.get("if-none-match"),
        )
        return BlobResponse(
            201,
            headers={
                "ETag": props.etag,
                "Last-Modified": http_date(props.last_modified),
                "Content-MD5": props.content_md5,
                "x-ms-request-server-encrypted": "true",
            },
        )

    def _put_block_list(self, container: str, name: str, headers: dict[str, str], body: bytes) -> BlobResponse:
        try:
            root = ElementTree.fromstring(body or b"<BlockList/>")
        except ElementTree.ParseError:
            raise BlobError(400, "InvalidXmlDocument", "The block list is not valid XML.") from None
        ids = [(el.tag, (el.text or "").strip()) for el in root]
        props = self.store.commit(
            container,
            name,
            ids,
            metadata=_metadata_from(headers),
            content_type=headers.get("x-ms-blob-content-type"),
            if_none_match=headers.get("if-none-match"),
        )
        return BlobResponse(
            201,
            headers={
                "ETag": props.etag,
                "Last-Modified": http_date(props.last_modified),
                "x-ms-request-server-encrypted": "true",
            },
        )

    def _get_block_list(self, container: str, name: str, query: dict[str, str]) -> BlobResponse:
        committed, uncommitted = self.store.block_list(container, name)
        kind = (query.get("blocklisttype") or "committed").lower()

        def xml(blocks: list[tuple[str, int]]) -> str:
            return "".join(f"<Block><Name>{escape(b)}</Name><Size>{s}</Size></Block>" for b, s in blocks)

        parts = ['<?xml version="1.0" encoding="utf-8"?><BlockList>']
        if kind in ("committed", "all"):
            parts.append(f"<CommittedBlocks>{xml(committed)}</CommittedBlocks>")
        if kind in ("uncommitted", "all"):
            parts.append(f"<UncommittedBlocks>{xml(uncommitted)}</UncommittedBlocks>")
        parts.append("</BlockList>")
        size = sum(s for _, s in committed)
        return BlobResponse(
            200, "".join(parts).encode(), {"Content-Type": "application/xml", "x-ms-blob-content-length": str(size)}
        )


__all__ = ["BLOB_PREFIX", "BlobError", "BlobProps", "BlobService", "BlobStore", "SasSigner"]
