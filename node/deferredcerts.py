"""Import aiohttp with its CA certificates loaded later, once minibtcd is ready.

aiohttp builds its HTTP client's two default TLS contexts when it is imported, and each
loads the system's CA certificates: 2 x 25 ms on a 2-core machine, a seventh of minibtcd's
start to RPC ready, for a client nothing in the node uses before then (it serves HTTP; its
peers speak P2P). minibtcd imports aiohttp with OpenSSL pointed at no CA file, and loads the
certificates into those two contexts right after RPC is ready (load, in a thread: OpenSSL
releases the GIL while it reads them), so they end as aiohttp makes them.
"""

from __future__ import annotations

import os
import sys

_pending = False  # aiohttp was imported here and its contexts still lack the certificates


def import_aiohttp() -> None:
    """Import aiohttp.web without loading CA certificates (a no-op if aiohttp is imported)."""
    global _pending
    if "aiohttp" in sys.modules:
        return
    saved = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = os.devnull  # read by OpenSSL's set_default_verify_paths
    try:
        import aiohttp.web  # noqa: F401
    finally:
        if saved is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = saved
    _pending = True


def load() -> None:
    """Load the CA certificates into aiohttp's default client contexts (blocking reads)."""
    global _pending
    if not _pending:
        return
    _pending = False
    from aiohttp import connector

    for name in ("_SSL_CONTEXT_VERIFIED", "_SSL_CONTEXT_UNVERIFIED"):
        context = getattr(connector, name, None)
        if context is not None:
            context.set_default_verify_paths()
