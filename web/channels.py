"""Moved to connectors/channels.py (the account lifecycle is not the HTTP layer's)."""

from connectors.channels import credential_schema, platforms

__all__ = ["credential_schema", "platforms"]
