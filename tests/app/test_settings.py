"""App settings: storage connection precedence and the allowed-roots default."""

import asyncio
import os
import tempfile
from pathlib import Path

import pytest

from site_backup.errors import InvalidBackupRequest, StorageNotConfigured
from site_backup.messages import Tuning
from site_backup.roots import allowed_roots
from site_backup.storage import StorageSettings, close_storage, storage, storage_settings


def test_backup_storage_connection_string_wins():
    env = {"BACKUP_STORAGE": "UseDevelopmentStorage=true", "AzureWebJobsStorage": "other"}
    assert storage_settings(env) == StorageSettings("backups", connection_string="UseDevelopmentStorage=true")


def test_identity_based_connection_and_container_name():
    env = {
        "BACKUP_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
        "BACKUP_STORAGE__clientId": "1111",
        "BACKUP_CONTAINER": "site-copies",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    assert storage_settings(env) == StorageSettings(
        "site-copies", account_url="https://acct.blob.core.windows.net", client_id="1111"
    )


def test_account_name_form_and_fallback_to_the_host_storage():
    assert storage_settings({"BACKUP_STORAGE__accountName": "acct"}).account_url == "https://acct.blob.core.windows.net"
    assert storage_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}).connection_string == (
        "UseDevelopmentStorage=true"
    )
    assert storage_settings({"AzureWebJobsStorage__serviceUri": "https://h.blob.core.windows.net"}).account_url == (
        "https://h.blob.core.windows.net"
    )


def test_close_storage_closes_the_loops_connections_and_keeps_the_credential_to_close():
    """Nothing is sent: building the pipeline and closing it do no I/O (a token is fetched on the first request).

    That the identity credential was closed leaves nothing to observe; that it is kept for closing is checked.
    """
    env = {"BACKUP_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net"}

    async def open_and_close():
        opened = storage(env)
        assert opened.credential is not None and storage(env) is opened  # one per loop and settings
        await close_storage()
        reopened = storage(env)
        await close_storage()
        return opened, reopened

    opened, reopened = asyncio.run(open_and_close())
    assert opened.session.closed and reopened.session.closed and reopened is not opened


def test_missing_storage_says_what_to_set():
    with pytest.raises(StorageNotConfigured, match="BACKUP_STORAGE"):
        storage_settings({})


def test_allowed_roots_setting_is_resolved_and_split(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    env = {"BACKUP_ALLOWED_ROOTS": os.pathsep.join([str(tmp_path / "link"), str(tmp_path / "b") + "/../c"])}
    assert allowed_roots(env) == [tmp_path / "a", tmp_path / "c"]


def test_default_is_the_home_and_temp_directories_and_never_the_file_system_root(monkeypatch, tmp_path):
    temp = Path(os.path.realpath(tempfile.gettempdir()))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert allowed_roots({}) == [Path(os.path.realpath(tmp_path)), temp]
    monkeypatch.setenv("HOME", "/")
    assert allowed_roots({}) == [temp]
    monkeypatch.setenv("TMPDIR", "/")
    monkeypatch.setattr(tempfile, "tempdir", None)  # recompute gettempdir() from TMPDIR
    assert allowed_roots({}) == []


def test_in_azure_the_default_is_the_shared_home_only(monkeypatch, tmp_path):
    """Every instance mounts /home; the temp directory is each instance's own, so it is no default there."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert allowed_roots({"WEBSITE_INSTANCE_ID": "a1b2c3"}) == [Path(os.path.realpath(tmp_path))]


def test_catalog_container_and_tuning_settings():
    env = {"BACKUP_STORAGE": "UseDevelopmentStorage=true", "BACKUP_CATALOG_CONTAINER": "records"}
    assert storage_settings(env).catalog_container == "records"
    assert storage_settings({"BACKUP_STORAGE": "x"}).catalog_container == "backup-catalog"
    assert Tuning.from_settings({"BACKUP_TUNING": '{"window": 64, "batchFiles": 100}'}) == Tuning(
        window=64, batch_files=100
    )
    for bad, message in [('{"windw": 3}', "unknown key"), ('{"window": 0}', "at least 1"), ("[1]", "JSON object")]:
        with pytest.raises(InvalidBackupRequest, match=message):
            Tuning.from_settings({"BACKUP_TUNING": bad})
