"""Command-line client for the site-backup app.

Usage::

    python -m backup_cli backup DIR [--url URL] [--include GLOB]... [--exclude GLOB]... [--no-progress] [--no-start]
    python -m backup_cli start [--port 7071]

``backup`` posts DIR (made absolute) to the starter, follows the status URL with a progress bar
(plain lines when stdout is not a terminal) and exits 0 when the backup completed, 1 when it
failed or the host could not be reached, 2 when the host rejected the request (or, for a local
URL, DIR is missing or not a directory), 130 on Ctrl-C. When nothing listens at a local URL it
starts Azurite and devhost for the duration, allowing DIR besides the app's usual allowed roots;
Ctrl-C then terminates the backup before stopping them. A host that already runs is used as it is,
and Ctrl-C only stops following it.

``start`` runs Azurite and the host (`func start` if installed, devhost otherwise) until Ctrl-C.
"""
