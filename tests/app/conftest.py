"""Fixtures shared by the app's storage tests."""

import uuid

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient


@pytest.fixture
def container(azurite, monkeypatch) -> ContainerClient:
    """Fresh containers per test, configured through the app settings the app reads."""
    name = f"t{uuid.uuid4().hex[:20]}"
    monkeypatch.setenv("BACKUP_STORAGE", azurite.connection_string)
    monkeypatch.setenv("BACKUP_CONTAINER", name)
    monkeypatch.setenv("BACKUP_CATALOG_CONTAINER", f"{name}-catalog")
    monkeypatch.delenv("BACKUP_TUNING", raising=False)
    return BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(name)
