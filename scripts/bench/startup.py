#!/usr/bin/env python3
"""Start-up time against chain length: builds datadirs of N regtest blocks (cached in
--cache) and times opening them (loading the block index, checking the last blocks, putting
the UTXO set's best block at the tip), best of --rounds.

Then restart after a crash (--kill-at, default 1,000 and 10,000 blocks): an importer
(python -m node.importer -loadblock) is SIGKILLed once it reports that block connected, and
the next start-up, which rolls the UTXO set forward from its last flush, is timed against a
clean start-up of the same datadir in the same run. The ratio must not grow with the height:
a restart replays only the blocks since the last flush (FLUSH_INTERVAL seconds or
FLUSH_BLOCKS blocks, node/chain.py), never the whole chain.

First (issue 20) the start-up a user feels: `minibtcd` from process start to its first
successful getblockcount (RPC warm-up over) on a copy of a datadir of 1,000 and 100,000
blocks, beside the start of a bare `python -c pass` measured in the same rounds (the ratio
carries over to another machine), and the import time of the module groups the start-up
path loads, each in a fresh process. Each tree's modules are compiled to bytecode first, as
scripts/_venv.sh leaves them (where PYTHONDONTWRITEBYTECODE is set, Python would otherwise
compile them again at every start). --baseline DIR (a checkout of another commit) times
that tree too, alternating rounds with this one.

Run: .venv/bin/python scripts/bench/startup.py [--sizes 25000,50000,100000] [--kill-at 1000,10000]
     [--ready-sizes 1000,100000] [--baseline /tmp/old-checkout]

The figures to watch: the time to RPC ready and ChainState.load()'s seconds must stay flat
as the chain grows (the block index is read on demand, node/store/lazyindex.py), so its
milliseconds per 1,000 blocks fall. Each tree starts on a datadir as its own code leaves
one (chain_dir): a cache of format 1 (trees before format 2 of the block index), format 2
with the build's writes still in LevelDB's logs (`_v2`: trees before node.store.close_db),
and format 2 closed into tables (`_v2_closed`), made from one of the others by opening and
closing a copy with this tree's code.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from consensus.amounts import block_subsidy  # noqa: E402
from consensus.params import REGTEST  # noqa: E402
from node.chain import FLUSH_BLOCKS, ChainState  # noqa: E402
from node.scriptcheck import ScriptChecker  # noqa: E402
from tests.blocktools import make_block, make_coinbase  # noqa: E402


def build(datadir: Path, n: int) -> None:
    chain = ChainState(datadir, REGTEST, dbcache_mb=64, scripts=ScriptChecker(0))
    chain.load()
    prev = chain.tip.hash
    t = 1_600_000_000
    start = chain.height + 1
    for h in range(start, n + 1):
        b = make_block(prev, h, time=t + h,
                       coinbase=make_coinbase(h, block_subsidy(h, 150)))
        chain.process_block(b)
        prev = b.hash
        if h % 10_000 == 0:
            print(f"  built {h}/{n}", flush=True)
    chain.close()


def write_chain_file(path: Path, n: int) -> None:
    """n regtest blocks after genesis, framed as blk files are (for -loadblock)."""
    prev = REGTEST.genesis_hash
    t = 1_600_000_000
    with open(path.with_suffix(".tmp"), "wb") as f:
        for h in range(1, n + 1):
            b = make_block(prev, h, time=t + h, coinbase=make_coinbase(h, block_subsidy(h, 150)))
            raw = b.serialize()
            f.write(REGTEST.message_start + len(raw).to_bytes(4, "little") + raw)
            prev = b.hash
    os.replace(path.with_suffix(".tmp"), path)


def kill_at(datadir: Path, chain_file: Path, height: int) -> int:
    """Import chain_file into a fresh datadir and SIGKILL the importer once `height` is
    connected; returns the height it had reported."""
    shutil.rmtree(datadir, ignore_errors=True)
    p = subprocess.Popen(
        [sys.executable, "-m", "node.importer", f"-datadir={datadir}", "-par=1",
         f"-loadblock={chain_file}", "-printconnected"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reached = 0
    for line in p.stdout:  # type: ignore[union-attr]
        if line.startswith("connected "):
            reached = int(line.split()[1])
            if reached >= height:
                p.send_signal(signal.SIGKILL)
                break
    p.wait()
    p.stdout.close()  # type: ignore[union-attr]
    return reached


def time_restart(datadir: Path, rounds: int) -> tuple[float, int, int]:
    """Time the start-up of a killed node's datadir, best of `rounds` (each on a fresh copy
    of it, as the kill left it): (seconds, the UTXO set's height before, the tip's after)."""
    best_t, flushed, height = float("inf"), 0, 0
    for _ in range(rounds):
        copy = datadir.with_name(f"{datadir.name}_copy")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(datadir, copy)
        t0 = time.perf_counter()
        chain = ChainState(copy / "regtest", REGTEST, dbcache_mb=64, scripts=ScriptChecker(0))
        best = chain.coins.best_block()  # (what the kill left: load has not run yet)
        chain.load()
        best_t = min(best_t, time.perf_counter() - t0)
        e = chain.get(best) if best is not None else None
        flushed, height = (e.height if e is not None else 0), chain.height
        chain.close()
        shutil.rmtree(copy)
    return best_t, flushed, height


def time_open(datadir: Path, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        chain = ChainState(datadir, REGTEST, dbcache_mb=64, scripts=ScriptChecker(0))
        chain.load()
        best = min(best, time.perf_counter() - t0)
        chain.close()
    return best


IMPORT_GROUPS = [  # what the start-up path imports, in the order it does
    ("node.config", "settings"),
    ("node.daemon", "daemon"),
    ("aiohttp.web", "aiohttp (RPC server)"),
    ("node.rpc.server", "RPC server"),
    ("node.rpc.methods", "RPC methods"),
    ("node.chain", "chain state"),
    ("node.p2p.manager", "P2P"),
    ("wallet.service", "wallet"),
]


def time_imports(tree: Path) -> list[tuple[str, float]]:
    """Each group's import time over the groups before it, in one fresh process. aiohttp
    is imported as the tree's minibtcd does: since node.deferredcerts, without its CA load
    (done once RPC is ready)."""
    code = ("import sys, time, json\nsys.path.insert(0, sys.argv[1])\nout = []\n"
            "for m in sys.argv[2:]:\n    t = time.perf_counter()\n    m, _, fn = m.partition(':')\n"
            "    mod = __import__(m, fromlist=['_'])\n    if fn:\n        getattr(mod, fn)()\n"
            "    out.append(time.perf_counter() - t)\nprint(json.dumps(out))")
    deferred = (tree / "node" / "deferredcerts.py").exists()
    groups = ["node.deferredcerts:import_aiohttp" if m == "aiohttp.web" and deferred else m
              for m, _ in IMPORT_GROUPS]
    r = subprocess.run([sys.executable, "-c", code, str(tree), *groups],
                       cwd=tree, capture_output=True, text=True, check=True)
    return list(zip([name for _, name in IMPORT_GROUPS], json.loads(r.stdout)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _getblockcount_ok(port: int) -> bool:
    body = b'{"method":"getblockcount","params":[],"id":1}'
    auth = base64.b64encode(b"bench:bench").decode()
    req = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
           f"Connection: close\r\n\r\n").encode() + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(req)
            head = s.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.1 200")


def chain_dir(base: Path, n: int, tree: Path | None) -> Path:
    """The cached datadir of n blocks for `tree`, as that tree's code leaves it. Trees before
    format 2 of the block index (node/store/layout.py) cannot read format 2, and have their
    own (tree None: that one). Trees whose databases close with the session's writes put in
    tables (node.store.close_db) have theirs so closed; the trees before, one with the
    build's writes still in LevelDB's logs, as their close left it (their nodes replay those
    at the next start)."""
    if tree is None or not (tree / "node" / "store" / "lazyindex.py").exists():
        return base / f"chain_{n}"
    if "def close_db" in (tree / "node" / "store" / "__init__.py").read_text():
        return base / f"chain_{n}_v2_closed"
    return base / f"chain_{n}_v2"


def time_ready(tree: Path, chain_dir: Path, work: Path) -> float:
    """Seconds from starting minibtcd (of `tree`) on a copy of chain_dir to its first
    successful getblockcount."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(chain_dir, work / "regtest", ignore=shutil.ignore_patterns("built"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "node.daemon", "-regtest", f"-datadir={work}",
                          f"-rpcport={port}", "-listen=0", "-rpcuser=bench",
                          "-rpcpassword=bench", "-printtoconsole=0"],
                         cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not _getblockcount_ok(port):
            if p.poll() is not None:
                raise RuntimeError(f"minibtcd exited: {p.stderr.read().decode()[-2000:]}")
            time.sleep(0.002)
        return time.perf_counter() - t0
    finally:
        p.terminate()
        p.wait()
        p.stderr.close()


def time_bare_python() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def ready_report(base: Path, sizes: list[int], rounds: int, baseline: Path | None) -> None:
    trees = [("this tree", ROOT)] + ([("baseline", baseline)] if baseline else [])
    for _, tree in trees:  # as scripts/_venv.sh leaves them (see there): bytecode up to date
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "consensus",
                        "node", "wallet", "regtest"], cwd=tree, check=True,
                       stdout=subprocess.DEVNULL)
    print("import time of the start-up path's module groups (fresh process, median of "
          f"{rounds}), ms:")
    for label, tree in trees:
        runs = [time_imports(tree) for _ in range(rounds)]
        cells = "  ".join(f"{name} {1000 * statistics.median(r[i][1] for r in runs):.0f}"
                          for i, (_, name) in enumerate(IMPORT_GROUPS))
        total = statistics.median(sum(t for _, t in r) for r in runs)
        print(f"  {label:>9}: {cells}  | total {1000 * total:.0f}")
    print(f"\nstart-up to the first successful getblockcount (median of {rounds}; bare "
          f"`python -c pass` measured between rounds = 1.00)")
    print(f"{'blocks':>8} {'tree':>10} {'ready s':>8} {'bare s':>7} {'ratio':>6}")
    work = Path(tempfile.gettempdir()) / f"minibtc-ready-{os.getpid()}"
    for n in sizes:
        got: dict[str, list[float]] = {label: [] for label, _ in trees}
        bare: list[float] = []
        for _ in range(rounds):
            for label, tree in trees:  # alternating, so both see the same machine
                bare.append(time_bare_python())
                got[label].append(time_ready(tree, chain_dir(base, n, tree), work))
        b = statistics.median(bare)
        for label, _ in trees:
            t = statistics.median(got[label])
            print(f"{n:>8} {label:>10} {t:>8.3f} {b:>7.3f} {t / b:>6.1f}")
        if baseline:
            ratio = statistics.median(got["this tree"]) / statistics.median(got["baseline"])
            print(f"{'':>8} {'this/base':>10} {ratio:>8.2f}")
    shutil.rmtree(work, ignore_errors=True)
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="25000,50000,100000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kill-at", default="1000,10000",
                    help="heights at which an import is killed (empty: skip)")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "minibtc-bench"))
    ap.add_argument("--ready-sizes", default="1000,100000",
                    help="chain lengths for the time to RPC ready (empty: skip)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout, timed in alternating rounds with this one")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    ready_sizes = [int(s) for s in args.ready_sizes.split(",") if s]
    base = Path(args.cache) / "startup"
    for n in sorted(set(sizes) | set(ready_sizes)):
        d = chain_dir(base, n, ROOT)
        marker = d / "built"
        if not marker.exists():
            older = [o for o in (base / f"chain_{n}_v2", chain_dir(base, n, None))
                     if (o / "built").exists()]
            if older:  # (opened and closed by this tree: upgraded, and closed as it closes)
                print(f"opening a copy of {older[0]} ...", flush=True)
                shutil.copytree(older[0], d)
                time_open(d, 1)
            else:
                print(f"building a datadir with {n} blocks ...", flush=True)
                build(d, n)
            marker.write_text("ok")
    if ready_sizes:
        ready_report(base, ready_sizes, args.rounds, args.baseline)
    if sizes:
        print(f"ChainState.load() in this process, best of {args.rounds}")
        print(f"{'blocks':>8} {'start-up s':>11} {'ms per 1k blocks':>17}")
    for n in sizes:
        t = time_open(chain_dir(base, n, ROOT), args.rounds)
        print(f"{n:>8} {t:>11.2f} {1000 * t / (n / 1000):>17.1f}")
    if not sizes:
        return
    kills = [int(s) for s in args.kill_at.split(",") if s]
    if kills:
        total = max(kills) + FLUSH_BLOCKS + 100
        chain_file = base / f"import_{total}.dat"
        if not chain_file.exists():
            print(f"writing {chain_file.name} ...", flush=True)
            write_chain_file(chain_file, total)
        print(f"\nrestart after a SIGKILL during an import (clean start-up of the same datadir "
              f"= 1.00)\n{'killed at':>10} {'UTXO flushed at':>16} {'replayed':>9} "
              f"{'restart s':>10} {'clean s':>8} {'ratio':>6}")
        worst = None
        for h in kills + [None]:
            if h is None:  # the worst case: killed just before the flush after the last one
                h, note = worst, "  (just before a flush: the most to replay)"
            else:
                note = ""
            d = base / f"killed_{h}"
            reached = kill_at(d, chain_file, h)
            t_kill, flushed, height = time_restart(d, args.rounds)
            t_clean = time_open(d / "regtest", args.rounds)
            print(f"{reached:>10} {flushed:>16} {height - flushed:>9} {t_kill:>10.2f} "
                  f"{t_clean:>8.2f} {t_kill / t_clean:>6.2f}{note}")
            if worst is None and h == max(kills):
                worst = (flushed or -1) + FLUSH_BLOCKS - 1


if __name__ == "__main__":
    main()
