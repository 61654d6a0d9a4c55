"""Where the host serves the extension's API: the webhook base on the main port and the local RPC base."""

from __future__ import annotations

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
RPC_PATH = "/durabletask"


def webhook_base(port: int) -> str:
    """The extension's webhook URL base as a keyless local host gives it to clients (§10)."""
    return f"http://127.0.0.1:{port}{WEBHOOK_PATH}"


def rpc_base(port: int) -> str:
    """The durable client's local RPC base URL (`rpcBaseUrl`, §10)."""
    return f"http://127.0.0.1:{port}{RPC_PATH}/"
