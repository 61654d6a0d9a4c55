"""The backup's data path to Blob Storage: the few REST calls it makes, sent through azure-core.

Why not ``azure.storage.blob.aio``: for each small file the SDK builds a ``BlobClient`` (a configuration and a
pipeline of a dozen policies) and runs a generic serializer, which costs 2.2 ms of CPU per upload on this
project's machine; the same Put Blob sent through azure-core's pipeline costs 0.8 ms, and listing costs
353 µs against 34 µs per blob (``docs/benchmarks.md``). At tens of thousands of files that decides whether a
backup is bound by storage or by the worker's CPU. So the calls a backup makes in bulk (Put Blob, Put Block,
Put Block List, List Blobs, Get/Set Metadata, Get and Delete Blob, Create Container) are requests built here
and sent through an azure-core ``AsyncPipeline``, with its retry, SAS and bearer-token policies (its
transport-level request and response types: the ``azure.core.rest`` ones add another 0.3 ms per request); the
SDK still parses connection strings and signs the SAS. Requests follow REST API version ``API_VERSION``.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, cast
from urllib.parse import quote, unquote, urlencode
from xml.sax.saxutils import escape

from azure.core.exceptions import AzureError
from azure.core.pipeline import AsyncPipeline, policies
from azure.core.pipeline.transport import AsyncHttpResponse, HttpRequest

from .errors import BackupError

API_VERSION = "2021-12-02"
LIST_PAGE_SIZE = 5000
META_PREFIX = "x-ms-meta-"


class StorageRequestFailed(BackupError):
    """Storage refused a request; the message says which and why (a problem of that request, e.g. 403)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class StorageUnavailable(StorageRequestFailed):
    """Storage did not answer, or kept answering that it is busy or failing (5xx, 408, 429), through every
    retry: nothing about the request is wrong, so the backup waits for storage instead of failing files."""


TRANSIENT_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class BlobInfo:
    """What a listing or a HEAD says about one blob (``snapshot`` is set for a snapshot of it)."""

    name: str
    size: int
    content_md5: bytes | None
    metadata: Mapping[str, str]
    snapshot: str | None = None
    last_modified: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BlobPage:
    """One page of a listing and the marker of the next one (None after the last)."""

    blobs: tuple[BlobInfo, ...]
    next_marker: str | None
    prefixes: tuple[str, ...] = ()  # the "directories" of a listing by delimiter


class BlobStore:
    """One storage account's blob endpoint, reached through a shared pipeline (connections, retries, auth)."""

    def __init__(self, account_url: str, pipeline: AsyncPipeline[HttpRequest, AsyncHttpResponse]) -> None:
        self.account_url = account_url.rstrip("/")
        self._pipeline = pipeline

    # ---- writes -----------------------------------------------------------------------------------------

    async def put_blob(
        self,
        container: str,
        name: str,
        data: bytes,
        md5: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        create_only: bool = False,
    ) -> bool:
        """Create or replace a block blob in one request; storage checks the body against ``md5``.

        ``create_only``: never replace; returns False when the blob already exists (and writes nothing).
        """
        headers = {
            **({"If-None-Match": "*"} if create_only else {}),
            "x-ms-blob-type": "BlockBlob",
            "Content-MD5": _b64(md5),
            "x-ms-blob-content-md5": _b64(md5),
            "x-ms-blob-content-type": content_type,
            **_metadata_headers(metadata),
        }
        try:
            await self._send("PUT", container, name, headers=headers, body=data, expect=(201,))
        except StorageRequestFailed as exc:
            if create_only and exc.status in (409, 412) and not isinstance(exc, StorageUnavailable):
                return False
            raise
        return True

    async def put_block(self, container: str, name: str, block_id: str, data: bytes | memoryview, md5: bytes) -> None:
        """Stage one block (uncommitted until Put Block List); storage checks it against ``md5``."""
        query = {"comp": "block", "blockid": block_id}
        await self._send(
            "PUT", container, name, query=query, headers={"Content-MD5": _b64(md5)}, body=data, expect=(201,)
        )

    async def put_block_list(
        self,
        container: str,
        name: str,
        block_ids: Sequence[str],
        md5: bytes,
        content_type: str,
        metadata: Mapping[str, str],
    ) -> None:
        """Commit staged blocks as the blob's content, with its whole-content MD5 and metadata."""
        body = "".join(f"<Latest>{escape(b)}</Latest>" for b in block_ids)
        xml = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{body}</BlockList>'.encode()
        headers = {
            "Content-Type": "application/xml",
            "x-ms-blob-content-md5": _b64(md5),
            "x-ms-blob-content-type": content_type,
            **_metadata_headers(metadata),
        }
        await self._send("PUT", container, name, query={"comp": "blocklist"}, headers=headers, body=xml, expect=(201,))

    async def set_metadata(self, container: str, name: str, metadata: Mapping[str, str]) -> None:
        """Replace a blob's metadata, leaving its content alone."""
        await self._send(
            "PUT", container, name, query={"comp": "metadata"}, headers=_metadata_headers(metadata), expect=(200,)
        )

    async def snapshot(self, container: str, name: str) -> str | None:
        """Take a read-only snapshot of a blob as it is now; returns its time stamp (None if the blob is gone)."""
        response = await self._send("PUT", container, name, query={"comp": "snapshot"}, expect=(201,), missing_ok=True)
        return response.headers.get("x-ms-snapshot") if response.status_code == 201 else None

    async def delete_blob(self, container: str, name: str) -> None:
        """Delete a blob (and its snapshots); one that is already gone is fine."""
        await self._send(
            "DELETE", container, name, headers={"x-ms-delete-snapshots": "include"}, expect=(202,), missing_ok=True
        )

    async def delete_snapshot(self, container: str, name: str, snapshot: str) -> None:
        """Delete one snapshot of a blob, leaving the blob and its other snapshots; one already gone is fine."""
        await self._send("DELETE", container, name, query={"snapshot": snapshot}, expect=(202,), missing_ok=True)

    async def create_container(self, container: str) -> None:
        """Create the container; one that exists, or a credential scoped to it (403), is fine."""
        try:
            await self._send("PUT", container, None, query={"restype": "container"}, expect=(201,))
        except StorageRequestFailed as exc:
            if exc.status not in (403, 409):
                raise

    # ---- reads ------------------------------------------------------------------------------------------

    async def get_blob(self, container: str, name: str) -> bytes:
        """A blob's whole content (for the small documents the backup keeps about itself)."""
        response = await self._send("GET", container, name, expect=(200,))
        return response.body()

    async def get_range(
        self, container: str, name: str, offset: int, length: int, snapshot: str | None = None
    ) -> bytes:
        """``length`` bytes of a blob (or of one of its snapshots) from ``offset``."""
        query = {"snapshot": snapshot} if snapshot else None
        headers = {"x-ms-range": f"bytes={offset}-{offset + length - 1}"}
        response = await self._send("GET", container, name, query=query, headers=headers, expect=(200, 206))
        return response.body()

    async def versions(self, container: str, name: str) -> list[BlobInfo]:
        """The blob and its snapshots (oldest first, the blob itself last), with their sizes and MD5s."""
        found = [b for b in await self.list_all(container, name, snapshots=True) if b.name == name]
        return sorted(found, key=lambda b: (b.snapshot is None, b.snapshot or ""))

    async def pages(
        self, container: str, prefix: str, snapshots: bool = False, flat: bool = True
    ) -> AsyncIterator[BlobPage]:
        """Every page of a listing, following its markers (a page may come back empty and still have one)."""
        marker: str | None = None
        while True:
            page = await self.list_blobs(container, prefix, marker, snapshots=snapshots, flat=flat)
            yield page
            if not (marker := page.next_marker):
                return

    async def list_all(self, container: str, prefix: str, snapshots: bool = False) -> list[BlobInfo]:
        """Every blob (and, with ``snapshots``, snapshot) whose name starts with ``prefix``, in name order."""
        return [blob async for page in self.pages(container, prefix, snapshots) for blob in page.blobs]

    async def properties(self, container: str, name: str) -> BlobInfo | None:
        """A blob's size, Content-MD5 and metadata, or None when there is no such blob."""
        response = await self._send("HEAD", container, name, expect=(200,), missing_ok=True)
        if response.status_code == 404:
            return None
        headers = response.headers
        metadata = {k[len(META_PREFIX) :].lower(): v for k, v in headers.items() if k.lower().startswith(META_PREFIX)}
        md5 = headers.get("Content-MD5")
        return BlobInfo(name, int(headers.get("Content-Length", "0")), _unb64(md5), metadata)

    async def list_blobs(
        self,
        container: str,
        prefix: str,
        marker: str | None = None,
        snapshots: bool = False,
        flat: bool = True,
        page_size: int | None = None,
    ) -> BlobPage:
        """One page of the blobs whose names start with ``prefix``, with metadata, in name order (and their
        snapshots, with ``snapshots``; only those directly "in" ``prefix``, not below a further ``/``, unless
        ``flat``). A container that does not exist yet lists as empty.
        """
        include = "metadata,snapshots" if snapshots else "metadata"
        size = page_size or LIST_PAGE_SIZE
        query = {"restype": "container", "comp": "list", "include": include, "maxresults": str(size)}
        query["prefix"] = prefix
        if not flat:
            query["delimiter"] = "/"
        if marker:
            query["marker"] = marker
        response = await self._send("GET", container, None, query=query, expect=(200,), missing_ok=True)
        if response.status_code == 404:
            return BlobPage((), None)
        return _parse_listing(response.body())

    # ---- plumbing ---------------------------------------------------------------------------------------

    def url(self, container: str, name: str | None, query: Mapping[str, str] | None = None) -> str:
        path = f"{self.account_url}/{quote(container)}"
        if name is not None:
            path = f"{path}/{quote(name, safe='/~')}"
        return f"{path}?{urlencode(query, quote_via=quote)}" if query else path

    async def _send(
        self,
        method: str,
        container: str,
        name: str | None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | memoryview | None = None,
        expect: tuple[int, ...] = (200,),
        missing_ok: bool = False,
        created: bool = False,
    ) -> AsyncHttpResponse:
        # azure-core sends any bytes-like body as it is; its annotation names only bytes.
        data = cast(bytes | None, body)
        request = HttpRequest(method, self.url(container, name, query), headers=dict(headers or {}), data=data)
        where = f"{method} {container}/{name}" if name is not None else f"{method} container {container}"
        try:
            response = (await self._pipeline.run(request)).http_response
        except AzureError as exc:
            raise StorageUnavailable(f"Storage could not be reached for {where}: {_first_line(exc)}") from None
        status = response.status_code
        if status in expect or (missing_ok and status == 404):
            return response
        code = response.headers.get("x-ms-error-code", "")
        if status == 404 and code == "ContainerNotFound" and method == "PUT" and name is not None and not created:
            # Created on the first write that finds it missing (once, or again if storage lost it).
            await self.create_container(container)
            return await self._send(method, container, name, query, headers, body, expect, missing_ok, created=True)
        detail = _error_message(response.body()) if method != "HEAD" else ""
        message = f"Storage answered {status} {code or response.reason} for {where}" + (f": {detail}" if detail else "")
        failure = StorageUnavailable if status >= 500 or status in TRANSIENT_STATUSES else StorageRequestFailed
        raise failure(message, status, code)


def pipeline_client(auth_policy: Any, transport: Any) -> AsyncPipeline[HttpRequest, AsyncHttpResponse]:
    """The azure-core pipeline every request goes through: version header, retries with backoff, auth."""
    return AsyncPipeline(
        transport,
        policies=[
            policies.HeadersPolicy({"x-ms-version": API_VERSION}),
            policies.UserAgentPolicy("site-backup"),
            # Transient failures (503 throttling, 500, timeouts, dropped connections) are retried here with
            # exponential backoff, honouring Retry-After; what outlasts this is retried by the host.
            policies.AsyncRetryPolicy(retry_total=5, retry_backoff_factor=0.5, retry_backoff_max=30),
            auth_policy,
        ],
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        return base64.b64decode(text)
    except ValueError:
        return None


def _metadata_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    return {f"{META_PREFIX}{k}": v for k, v in metadata.items()}


def _parse_listing(body: bytes) -> BlobPage:
    """List Blobs' XML: the names (decoded when storage had to percent-encode them), sizes, MD5s, metadata."""
    root = ET.fromstring(body)
    blobs = []
    for blob in root.iter("Blob"):
        name_element = blob.find("Name")
        if name_element is None or name_element.text is None:
            continue
        name = unquote(name_element.text) if name_element.get("Encoded") == "true" else name_element.text
        properties = blob.find("Properties")
        size = int(properties.findtext("Content-Length") or 0) if properties is not None else 0
        md5 = _unb64(properties.findtext("Content-MD5")) if properties is not None else None
        metadata_element = blob.find("Metadata")
        metadata = {m.tag.lower(): m.text or "" for m in metadata_element} if metadata_element is not None else {}
        modified = properties.findtext("Last-Modified") if properties is not None else None
        blobs.append(BlobInfo(name, size, md5, metadata, blob.findtext("Snapshot") or None, _http_date(modified)))
    marker = root.findtext("NextMarker") or None
    prefixes = tuple(p.findtext("Name") or "" for p in root.iter("BlobPrefix"))
    return BlobPage(tuple(blobs), marker, prefixes)


def _http_date(text: str | None) -> datetime | None:
    try:
        return parsedate_to_datetime(text) if text else None
    except (TypeError, ValueError):
        return None


def _error_message(body: bytes) -> str:
    try:
        return (ET.fromstring(body).findtext("Message") or "").strip().splitlines()[0]
    except (ET.ParseError, IndexError):
        return ""


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
