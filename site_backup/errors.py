"""Errors that carry a message a person can act on."""


class BackupError(Exception):
    """Base class for every error this package raises on purpose."""


class InvalidBackupRequest(BackupError):
    """The request is malformed or names something that cannot be backed up (HTTP 400)."""


class DirectoryNotAllowed(BackupError):
    """The directory resolves outside the allowed roots (HTTP 403)."""


class StorageNotConfigured(BackupError):
    """No storage connection is configured in the app settings."""


class FileChangedDuringBackup(BackupError):
    """The file changed while it was read, so the bytes read are not a consistent copy."""


class BackupIncomplete(BackupError):
    """Some files could not be backed up; every other file was."""


class BackupFailed(BackupError):
    """The backup cannot go on: the listing failed for good, or storage stayed unavailable too long."""
