"""devhost: a pure-Python stand-in for the Azure Functions host and the Durable Functions extension."""

__version__ = "0.1.0"
