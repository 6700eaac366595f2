"""TLS verification for platform clients: on, off, or pinned to one certificate file."""

from __future__ import annotations

import ssl
from pathlib import Path


def ssl_verify(verify: bool | str | Path) -> bool | ssl.SSLContext:
    """A path means: trust this CA (or self-signed) certificate file."""
    if isinstance(verify, bool):
        return verify
    return ssl.create_default_context(cafile=str(verify))
