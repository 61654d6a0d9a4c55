"""Where the project lives, so the CLI finds node_modules and the app wherever it is run from.

The services the CLI starts keep their data and logs in ``.azurite/`` and ``.devhost/`` under the project,
or under ``SITE_BACKUP_LOCAL_DIR`` when that is set (the tests point it at a temporary directory).
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
LOCAL_DIR = Path(os.environ.get("SITE_BACKUP_LOCAL_DIR") or PROJECT_ROOT)
AZURITE_DIR = LOCAL_DIR / ".azurite"
DEVHOST_DIR = LOCAL_DIR / ".devhost"
HUB_FILE = DEVHOST_DIR / "SiteBackupHub.sqlite"


def check_project_root() -> Path:
    """The project root, or an error that says why it is not where the package expects it."""
    if not (PROJECT_ROOT / "function_app.py").is_file():
        raise FileNotFoundError(f"No function_app.py in {PROJECT_ROOT}; backup_cli must sit next to the app.")
    return PROJECT_ROOT
