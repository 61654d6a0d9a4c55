"""Command-line client for the site-backup app.

Usage::

    python -m backup_cli backup DIR [--url URL] [--include GLOB]... [--exclude GLOB]... [--no-progress] [--no-start]
    python -m backup_cli start [--port 7071]

``backup`` posts DIR (made absolute) to the starter, follows the status URL with a progress bar
(plain lines when stdout is not a terminal) and exits 0 when the backup completed, 1 when it
failed or the host could not be reached, 2 when the host rejected the request, 130 on Ctrl-C.
When nothing listens at a local URL it starts Azurite and devhost for the duration.

``start`` runs Azurite and the host (`func start` if installed, devhost otherwise) until Ctrl-C.
"""
