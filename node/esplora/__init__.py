"""The Esplora HTTP API (Blockstream's, as its electrs serves it), served by minibtcd itself:
minibtc's own options, not Core's:

    -esplora[=<port>]        serve it (default port 3002 on regtest, 3000 on main: electrs's)
    -esplorabind=<addr>      where to listen (default 127.0.0.1; may be given more than once)
    -esploracors=<origin>    the Access-Control-Allow-Origin header (default *; -noesploracors
                             for none)

-esplora implies -txindex, -txospenderindex and minibtc's address index (indexes/addrindex/db,
node/index/addrindex.py), as Core's SoftSetBoolArg would: it cannot run with -prune.
"""

from __future__ import annotations

import logging

from node.confparse import ConfigError

log = logging.getLogger("http")

DEFAULT_PORTS = {"regtest": 3002, "main": 3000}


def esplora_port(cfg) -> int | None:
    """The port -esplora asks for, or None when it is off."""
    if not cfg.arg_set("esplora"):
        return None
    values = cfg.arg_list("esplora")
    if not values:
        return None  # -noesplora last
    value = values[-1]
    if value in ("", "1"):
        return DEFAULT_PORTS.get(cfg.chain, 3002)
    if value == "0":
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"Error: Invalid port specified in -esplora: '{value}'")
    return int(value)


def configure(cfg) -> int | None:
    """Check the options and turn on the indexes -esplora needs (before they are opened)."""
    port = esplora_port(cfg)
    if port is None:
        return None
    if cfg.arg_int("prune", 0):
        raise ConfigError("Error: Prune mode is incompatible with -esplora.")
    if getattr(cfg, "reindex_chainstate", False):  # (as Core says it of the indexes)
        raise ConfigError("Error: -reindex-chainstate option is not compatible with -esplora. "
                          "Please temporarily disable esplora while using -reindex-chainstate, "
                          "or replace -reindex-chainstate with -reindex to fully rebuild all "
                          "indexes.")
    cfg.txindex = True
    if not cfg.arg_set("txospenderindex"):
        cfg.args["txospenderindex"] = ["1"]
    return port


async def start(node, index):
    """Start the server for a running node (after the chain, the mempool and P2P)."""
    port = esplora_port(node.config)
    if port is None or index is None:
        return None
    from node.esplora.query import EsploraQuery
    from node.esplora.server import EsploraServer

    cfg = node.config
    hosts = cfg.arg_list("esplorabind") or ["127.0.0.1"]
    cors = cfg.arg_str("esploracors")
    cors = None if cors == "0" else "*" if cors in (None, "", "1") else cors
    binds = []
    for h in hosts:
        host, _, p = h.rpartition(":") if h.count(":") == 1 else (h, "", "")
        binds.append((host or h, int(p) if p.isdigit() else port))
    server = EsploraServer(EsploraQuery(node, index), binds, cors)
    try:
        await server.start()
    except OSError as err:
        await server.stop()
        raise ConfigError(f"Error: Unable to bind the Esplora port {port}: {err}") from None
    return server
