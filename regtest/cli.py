"""minibtc-net's entry point (`minibtc-net`, `python -m regtest.cli`).

`minibtc-net cli N ARGS...` is answered here, with nothing loaded but what minibtc-cli loads
itself (the network's description is one JSON file), so that it costs about what
minibtc-cli costs; every other command is regtest/netapp.py's (typer).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT_DIR = Path("~/.minibtc-net")
WALLET = "default"  # regtest.network.WALLET (not imported: it loads the RPC client)


def _cli_fast(args: list[str]) -> int | None:
    """`cli [--dir D] N [--dir D] ARGS...`: minibtc-cli against node N with its wallet; None
    when the command line is not that simple (the full CLI then answers, with its errors)."""
    folder = DEFAULT_DIR
    rest: list[str] = []
    node = None
    k = 0
    while k < len(args):
        a = args[k]
        if a == "--dir" and k + 1 < len(args):
            folder = Path(args[k + 1])
            k += 2
            continue
        if a.startswith("--dir="):
            folder = Path(a.split("=", 1)[1])
        elif node is None:
            if not a.isdigit():
                return None  # (--help, a bad number: the full CLI's answer)
            node = int(a)
        else:
            rest.append(a)
        k += 1
    if node is None:
        return None
    folder = folder.expanduser()
    try:
        spec = json.loads((folder / "network.json").read_text())
    except (OSError, ValueError):
        return None
    if not 0 <= node < spec.get("nodes", 0):
        return None
    if spec.get("hosts"):
        from regtest.hosts import Hosts

        host = Hosts(folder, spec["nodes"]).addr(node)
    else:
        host = "127.0.0.1"
    from node.cli import main as cli_main

    return cli_main(["-regtest", f"-datadir={folder / f'node{node}'}",
                     f"-rpcport={spec['rpc_ports'][node]}", f"-rpcconnect={host}",
                     f"-rpcwallet={WALLET}", *rest]) or 0


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["cli"]:
        code = _cli_fast(args[1:])
        if code is not None:
            sys.exit(code)
    from regtest.netapp import main as app_main

    app_main()


if __name__ == "__main__":
    main()
