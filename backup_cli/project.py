"""Where the project lives, so the CLI finds node_modules and the app wherever it is run from."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
AZURITE_DIR = PROJECT_ROOT / ".azurite"
DEVHOST_DIR = PROJECT_ROOT / ".devhost"
HUB_FILE = DEVHOST_DIR / "SiteBackupHub.sqlite"


def check_project_root() -> Path:
    """The project root, or an error that says why it is not where the package expects it."""
    if not (PROJECT_ROOT / "function_app.py").is_file():
        raise FileNotFoundError(f"No function_app.py in {PROJECT_ROOT}; backup_cli must sit next to the app.")
    return PROJECT_ROOT
