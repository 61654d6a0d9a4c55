"""Which directories may be backed up, and the checks a directory must pass.

The allowed roots come from the ``BACKUP_ALLOWED_ROOTS`` app setting (paths separated by
``os.pathsep``). Without it, the default is the home directory (on App Service ``/home``, or
``D:\\home`` on Windows, which holds ``site/wwwroot`` and ``LogFiles``) and, off Azure, the system
temp directory. In Azure (``WEBSITE_INSTANCE_ID`` is set) the default is the home directory only: it is the
storage every instance of the app mounts, while the temp directory is each instance's own, so a tree there
would be listed on one instance and not found by copies running on the others. A root that resolves to the
file-system root is only honoured when set explicitly.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import DirectoryNotAllowed, InvalidBackupRequest

ALLOWED_ROOTS_SETTING = "BACKUP_ALLOWED_ROOTS"
AZURE_INSTANCE_SETTING = "WEBSITE_INSTANCE_ID"  # set by App Service on every instance of an app


def allowed_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """The resolved allowed roots, from the setting or the safe default."""
    env = os.environ if env is None else env
    configured = env.get(ALLOWED_ROOTS_SETTING, "").strip()
    if configured:
        return [Path(os.path.realpath(p.strip())) for p in configured.split(os.pathsep) if p.strip()]
    return default_roots(env)


def default_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """The home directory, and off Azure the system temp directory; never the file-system root."""
    env = os.environ if env is None else env
    candidates = [os.path.expanduser("~")]
    if not env.get(AZURE_INSTANCE_SETTING):
        candidates.append(tempfile.gettempdir())
    roots = []
    for candidate in candidates:
        root = Path(os.path.realpath(candidate))
        if root != Path(root.anchor) and root not in roots:
            roots.append(root)
    return roots


def resolve_backup_directory(path: str, roots: list[Path]) -> Path:
    """Resolve ``..`` and symlinks, then require a readable directory inside an allowed root.

    The root check comes first so that nothing is revealed about paths outside the roots.
    """
    if not os.path.isabs(path):
        raise InvalidBackupRequest(f"The directory must be an absolute path, got {path!r}.")
    try:
        return _resolve(path, roots)
    except (OSError, ValueError) as exc:  # e.g. a name too long for the file system, or unencodable
        raise InvalidBackupRequest(f"The directory {path!r} cannot be used: {exc}.") from exc


def resolve_within_roots(path: str, roots: list[Path]) -> Path:
    """``path`` with ``..`` and symlinks resolved, or DirectoryNotAllowed if that leaves the roots."""
    resolved = Path(os.path.realpath(path))
    if not any(is_within(resolved, root) for root in roots):
        shown = ", ".join(str(r) for r in roots) or "none"
        raise DirectoryNotAllowed(
            f"{path!r} is outside the allowed roots ({shown}). "
            f"Back up a directory under one of them, or add its root to the {ALLOWED_ROOTS_SETTING} app setting."
        )
    return resolved


def _resolve(path: str, roots: list[Path]) -> Path:
    resolved = resolve_within_roots(path, roots)
    if not resolved.exists():
        raise InvalidBackupRequest(f"The directory {path!r} does not exist.")
    if not resolved.is_dir():
        raise InvalidBackupRequest(f"{path!r} is not a directory; give the directory that holds the files.")
    if not os.access(resolved, os.R_OK | os.X_OK):
        raise InvalidBackupRequest(f"The directory {path!r} is not readable by the function app.")
    return resolved


def is_within(path: Path, root: Path) -> bool:
    """True when ``path`` is ``root`` or below it (both already resolved)."""
    return path == root or root in path.parents
