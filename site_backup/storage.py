"""Where the backup goes: the settings, and one set of storage connections per event loop.

Settings, in order of precedence:
- ``BACKUP_STORAGE``: a connection string (account key or SAS);
- ``BACKUP_STORAGE__blobServiceUri`` (or ``__serviceUri`` / ``__accountName``): identity-based, with
  ``DefaultAzureCredential`` (``BACKUP_STORAGE__clientId`` picks a user-assigned identity);
- the same two forms under ``AzureWebJobsStorage``, the storage the Functions host already uses.
``BACKUP_CONTAINER`` names the container of the backed-up files (default ``backups``) and
``BACKUP_CATALOG_CONTAINER`` the one of the backup's own records (default ``backup-catalog``), so the two
never mix.

An account key never travels: requests carry a short-lived account SAS signed from it in this process.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy, SansIOHTTPPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob import AccountSasPermissions, BlobServiceClient, ResourceTypes, generate_account_sas

from .blobstore import BlobStore, pipeline_client
from .errors import StorageNotConfigured

CONTAINER_SETTING = "BACKUP_CONTAINER"
CATALOG_SETTING = "BACKUP_CATALOG_CONTAINER"
DEFAULT_CONTAINER = "backups"
DEFAULT_CATALOG_CONTAINER = "backup-catalog"
CONNECTION_PREFIXES = ("BACKUP_STORAGE", "AzureWebJobsStorage")
STORAGE_SCOPE = "https://storage.azure.com/.default"
SAS_LIFETIME = timedelta(hours=4)
SAS_RENEW_AFTER_SECONDS = 3600.0
# Connections kept to storage per process; requests beyond it wait for a free one.
MAX_CONNECTIONS = 128


@dataclass(frozen=True)
class StorageSettings:
    """Where the backup goes: exactly one of a connection string or an account URL."""

    container: str
    catalog_container: str = DEFAULT_CATALOG_CONTAINER
    connection_string: str | None = None
    account_url: str | None = None
    client_id: str | None = None


def storage_settings(env: Mapping[str, str] | None = None) -> StorageSettings:
    """Read the storage settings, raising StorageNotConfigured with what to set."""
    env = os.environ if env is None else env
    container = env.get(CONTAINER_SETTING, "").strip() or DEFAULT_CONTAINER
    catalog = env.get(CATALOG_SETTING, "").strip() or DEFAULT_CATALOG_CONTAINER
    for prefix in CONNECTION_PREFIXES:
        if env.get(prefix, "").strip():
            return StorageSettings(container, catalog, connection_string=env[prefix].strip())
        url = _identity_account_url(env, prefix)
        if url:
            return StorageSettings(container, catalog, account_url=url, client_id=env.get(f"{prefix}__clientId"))
    raise StorageNotConfigured(
        "No storage is configured: set BACKUP_STORAGE to a connection string, or "
        "BACKUP_STORAGE__blobServiceUri to use the app's managed identity (AzureWebJobsStorage is the fallback)."
    )


def _identity_account_url(env: Mapping[str, str], prefix: str) -> str | None:
    for key in ("blobServiceUri", "serviceUri"):
        if env.get(f"{prefix}__{key}", "").strip():
            return env[f"{prefix}__{key}"].strip()
    account = env.get(f"{prefix}__accountName", "").strip()
    return f"https://{account}.blob.core.windows.net" if account else None


@dataclass(frozen=True)
class Storage:
    """The storage a backup uses from one event loop: the account and both containers.

    Containers are created by the first write that finds one missing (``BlobStore``), so a storage account
    that lost one (an emulator restarted, a container deleted by hand) gets it back.
    """

    store: BlobStore
    container: str
    catalog_container: str
    # Held only to be closed by close_storage: the connections, and the identity credential (whose own
    # sessions fetch tokens) when there is one.
    session: aiohttp.ClientSession = field(repr=False, compare=False)
    credential: AsyncTokenCredential | None = field(default=None, repr=False, compare=False)


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[StorageSettings, Storage]] = (
    weakref.WeakKeyDictionary()
)


def storage(env: Mapping[str, str] | None = None) -> Storage:
    """The storage for the current settings on the running event loop (connections are bound to a loop)."""
    settings = storage_settings(env)
    loop = asyncio.get_running_loop()
    known = _per_loop.setdefault(loop, {})
    found = known.get(settings)
    if found is None:
        store, session, credential = _connect(settings)
        found = Storage(store, settings.container, settings.catalog_container, session, credential)
        known[settings] = found
    return found


async def close_storage() -> None:
    """Close the running loop's connections and credentials, for a process that stops its loop (a test session)."""
    for found in _per_loop.pop(asyncio.get_running_loop(), {}).values():
        await found.session.close()
        if found.credential is not None:
            await found.credential.close()


def _connect(settings: StorageSettings) -> tuple[BlobStore, aiohttp.ClientSession, AsyncTokenCredential | None]:
    credential: AsyncTokenCredential | None = None
    if settings.connection_string:
        service = BlobServiceClient.from_connection_string(settings.connection_string)
        url, _, sas = service.url.partition("?")
        key = getattr(service.credential, "account_key", None)
        auth: Any = _SasPolicy(_AccountSas(service.account_name or "", key) if key else _FixedSas(sas))
    else:
        from azure.identity.aio import DefaultAzureCredential  # imported lazily: only identity setups need it

        url = settings.account_url or ""
        credential = DefaultAzureCredential(managed_identity_client_id=settings.client_id)
        auth = AsyncBearerTokenCredentialPolicy(credential, STORAGE_SCOPE)
    session = _session(url)
    transport = AioHttpTransport(session=session, session_owner=False, connection_timeout=30, read_timeout=120)
    return BlobStore(url, pipeline_client(auth, transport)), session, credential


def _session(url: str) -> aiohttp.ClientSession:
    """aiohttp with keep-alive; proxy settings are read once here instead of on every request."""
    host = urlsplit(url).hostname or ""
    trust_env = bool(urllib.request.getproxies()) and not urllib.request.proxy_bypass(host)
    return aiohttp.ClientSession(
        trust_env=trust_env, connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ttl_dns_cache=300)
    )


class _FixedSas:
    """A SAS given in the connection string."""

    def __init__(self, token: str) -> None:
        self.token = token.lstrip("?")

    def current(self) -> str:
        return self.token


class _AccountSas:
    """An account SAS signed here from the account key, renewed long before it expires."""

    def __init__(self, account_name: str, account_key: str) -> None:
        self.account_name = account_name
        self.account_key = account_key
        self.token = ""
        self.signed_at = float("-inf")

    def current(self) -> str:
        if time.monotonic() - self.signed_at > SAS_RENEW_AFTER_SECONDS:
            now = datetime.now(UTC)
            self.token = generate_account_sas(
                self.account_name,
                self.account_key,
                resource_types=ResourceTypes(service=True, container=True, object=True),
                permission=AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True),
                expiry=now + SAS_LIFETIME,
                start=now - timedelta(minutes=15),  # tolerate clock skew
            )
            self.signed_at = time.monotonic()
        return self.token


class _SasPolicy(SansIOHTTPPolicy[Any, Any]):
    """Appends the SAS to a request's query string (once: the retry policy sends the same request again)."""

    def __init__(self, sas: _FixedSas | _AccountSas) -> None:
        self.sas = sas

    def on_request(self, request: PipelineRequest[Any]) -> None:
        url = request.http_request.url
        if "sig=" in url:
            return
        token = self.sas.current()
        if token:
            request.http_request.url = f"{url}{'&' if '?' in url else '?'}{token}"
