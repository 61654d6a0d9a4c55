"""Helpers the test session uses to run real services (Azurite, devhost) on free loopback ports."""
