"""The storage connection: settings, one client per process, the container created once.

Settings, in order of precedence:
- ``BACKUP_STORAGE``: a connection string;
- ``BACKUP_STORAGE__blobServiceUri`` (or ``__serviceUri`` / ``__accountName``): identity-based, with
  ``DefaultAzureCredential`` (``BACKUP_STORAGE__clientId`` picks a user-assigned identity);
- the same two forms under ``AzureWebJobsStorage``, the storage the Functions host already uses.
``BACKUP_CONTAINER`` names the container (default ``backups``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerClient

from .errors import StorageNotConfigured

log = logging.getLogger(__name__)

CONTAINER_SETTING = "BACKUP_CONTAINER"
DEFAULT_CONTAINER = "backups"
CONNECTION_PREFIXES = ("BACKUP_STORAGE", "AzureWebJobsStorage")


@dataclass(frozen=True)
class StorageSettings:
    """Where the backup goes: exactly one of a connection string or an account URL."""

    container: str
    connection_string: str | None = None
    account_url: str | None = None
    client_id: str | None = None


def storage_settings(env: Mapping[str, str] | None = None) -> StorageSettings:
    """Read the storage settings, raising StorageNotConfigured with what to set."""
    env = os.environ if env is None else env
    container = env.get(CONTAINER_SETTING, "").strip() or DEFAULT_CONTAINER
    for prefix in CONNECTION_PREFIXES:
        if env.get(prefix, "").strip():
            return StorageSettings(container, connection_string=env[prefix].strip())
        url = _identity_account_url(env, prefix)
        if url:
            return StorageSettings(container, account_url=url, client_id=env.get(f"{prefix}__clientId"))
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


_lock = threading.Lock()
_containers: dict[StorageSettings, ContainerClient] = {}


def backup_container(env: Mapping[str, str] | None = None) -> ContainerClient:
    """The process-wide container client for the current settings; creates the container once."""
    settings = storage_settings(env)
    with _lock:
        client = _containers.get(settings)
        if client is None:
            client = _service_client(settings).get_container_client(settings.container)
            _create_if_missing(client)
            _containers[settings] = client
        return client


def _create_if_missing(client: ContainerClient) -> None:
    """Create the container; a credential scoped to the container itself may not, and need not."""
    try:
        client.create_container()
    except ResourceExistsError:
        pass
    except HttpResponseError as exc:
        if exc.status_code != 403:
            raise
        log.info(
            "Not allowed to create container %s; assuming it exists (uploads will say if not).", client.container_name
        )


def _service_client(settings: StorageSettings) -> BlobServiceClient:
    if settings.connection_string:
        return BlobServiceClient.from_connection_string(settings.connection_string)
    from azure.identity import DefaultAzureCredential  # imported lazily: only identity setups need it

    credential = DefaultAzureCredential(managed_identity_client_id=settings.client_id)
    return BlobServiceClient(settings.account_url or "", credential=credential)
