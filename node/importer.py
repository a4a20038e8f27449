"""A small block-import entry point with Core-style flags, used by tests and benchmarks:

    python -m node.importer -datadir=DIR [-chain=regtest|main] [-loadblock=FILE ...]
        [-reindex] [-reindex-chainstate] [-dbcache=MiB] [-par=N] [-printconnected] [-status]

It opens (and recovers) the chain state, runs the requested import, and exits. With
-printconnected each connected block is reported on stdout as `connected HEIGHT HASH`;
with -status the final tip and UTXO digest are printed as `tip HEIGHT HASH` and
`utxo DIGEST COUNT TOTAL`. minibtcd accepts the same flags.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from consensus.params import get_params
from node.blockimport import load_external_block_file, reindex, reindex_chainstate
from node.chain import ChainState
from node.config import chain_dir
from node.scriptcheck import ScriptChecker


def parse_args(argv: list[str]) -> dict[str, list[str]]:
    """Core-style `-name=value` / `-name` flags (also `--name`); repeatable."""
    opts: dict[str, list[str]] = {}
    for arg in argv:
        if not arg.startswith("-"):
            raise SystemExit(f"Error: unexpected argument {arg!r}")
        name, _, value = arg.lstrip("-").partition("=")
        opts.setdefault(name, []).append(value if value or "=" in arg else "1")
    return opts


def main(argv: list[str] | None = None) -> int:
    from node.daemon import tune_gc

    tune_gc()
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    known = {"datadir", "chain", "regtest", "loadblock", "reindex", "reindex-chainstate",
             "dbcache", "par", "printconnected", "status", "debug"}
    unknown = set(opts) - known
    if unknown:
        print(f"Error: unknown option(s): {', '.join(sorted('-' + u for u in unknown))}",
              file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.DEBUG if "debug" in opts else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    chain_name = "regtest" if "regtest" in opts else opts.get("chain", ["regtest"])[-1]
    params = get_params(chain_name)
    if "datadir" not in opts:
        print("Error: -datadir is required", file=sys.stderr)
        return 1
    datadir = chain_dir(Path(opts["datadir"][-1]).expanduser(), chain_name)
    dbcache = int(opts.get("dbcache", ["450"])[-1])
    par = int(opts["par"][-1]) if "par" in opts else None

    if "reindex-chainstate" in opts and "reindex" not in opts:
        from node.store.blockindex import index_damage

        damage = index_damage(datadir / "blocks" / "index")
        if damage:  # the UTXO set cannot be rebuilt on it: rebuild both, as -reindex
            logging.getLogger("validation").warning(
                "block index damaged (%s): rebuilding it as -reindex", damage)
            import shutil

            shutil.rmtree(datadir / "blocks" / "index")
            opts["reindex"] = ["1"]
    scripts = ScriptChecker.from_par(par)
    if scripts.parallel:
        # While the chain state loads, as minibtcd starts them with the node, not in the
        # middle of the first large block.
        scripts.pool.start_in_background("script check workers")
    chain = ChainState(datadir, params, dbcache_mb=dbcache, scripts=scripts)
    if "printconnected" in opts:
        def report(block, entry) -> None:
            sys.stdout.write(f"connected {entry.height} {entry.hash_hex()}\n")
            sys.stdout.flush()

        chain.on_connected.append(report)
    try:
        if "reindex" in opts or chain.index_db.is_reindexing():
            reindex(chain)
        elif "reindex-chainstate" in opts:
            reindex_chainstate(chain)
        else:
            chain.load()
        for f in opts.get("loadblock", []):
            stats = load_external_block_file(chain, Path(f))
            logging.getLogger("validation").info("imported %s: %s", f, stats)
        if "status" in opts:
            digest, count, total = chain.utxo_stats()
            print(f"tip {chain.height} {chain.tip.hash_hex()}")
            print(f"utxo {digest[::-1].hex()} {count} {total}")
    finally:
        chain.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
