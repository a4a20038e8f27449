"""A miner, as mining software is: a separate program that asks its node for work with
getblocktemplate (BIP22/23, segwit rule), builds the coinbase and the block itself, grinds
the nonce and hands the block back with submitblock.

Blocks are found at random moments around a mean interval (a Poisson process: the gaps are
exponential), as real hash power finds them, so that two miners on different nodes now and
then find competing blocks and short forks happen. With --on-tx it also mines as soon as its
node's mempool holds a transaction (what nigiri and Polar users rely on).

    python -m regtest.miner --rpc http://127.0.0.1:18443 --cookie DIR/regtest/.cookie \
        [--address bcrt1q...] --interval 10 [--on-tx] [--seed N]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import time
from pathlib import Path

from consensus.block import Block, BlockHeader, merkle_root
from consensus.params import REGTEST
from consensus.script.script import push_data, push_int
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from node.mining import solve
from wallet.address import address_to_script
from wallet.nodeclient import NodeClient, NodeRPCError, NodeUnreachable

log = logging.getLogger("miner")

RULES = {"rules": ["segwit"]}


def build_block(tmpl: dict, script_pubkey: bytes, tag: bytes) -> Block:
    """A block from a getblocktemplate result: our coinbase (BIP34 height, then a tag and an
    extra nonce so that no two blocks are alike, the witness commitment), then the
    template's transactions."""
    height = tmpl["height"]
    script_sig = push_int(height) + push_data(tag + random.randbytes(4))
    cb = Transaction(2, [TxIn(OutPoint(), script_sig, 0xFFFFFFFF)],
                     [TxOut(tmpl["coinbasevalue"], script_pubkey)], 0)
    if "default_witness_commitment" in tmpl:
        cb.vout.append(TxOut(0, bytes.fromhex(tmpl["default_witness_commitment"])))
        cb.vin[0].witness = [b"\x00" * 32]  # the witness reserved value
    cb.rehash()
    txs = [Transaction.from_bytes(bytes.fromhex(t["data"])) for t in tmpl["transactions"]]
    header = BlockHeader(tmpl["version"], bytes.fromhex(tmpl["previousblockhash"])[::-1],
                         b"", tmpl["curtime"], int(tmpl["bits"], 16), 0)
    block = Block(header, [cb, *txs])
    header.merkle_root = merkle_root([t.txid for t in block.txs])[0]
    header.rehash()
    return block


class Miner:
    def __init__(self, node: NodeClient, address: str, interval: float, on_tx: bool,
                 seed: int | None, tag: str) -> None:
        self.node = node
        self.script = address_to_script(address, REGTEST)
        self.interval = interval
        self.on_tx = on_tx
        self.rng = random.Random(seed)
        self.tag = tag.encode()[:20]
        self.running = True
        self.found = 0
        self.parent: int | None = None  # stop once this process is no longer our parent

    def mine_one(self) -> str | None:
        """Mine one block on the node's current template; its hash, or None if refused."""
        tmpl = self.node.call("getblocktemplate", RULES)
        block = build_block(tmpl, self.script, self.tag)
        if not solve(block, REGTEST, 1 << 32):
            return None
        result = self.node.call("submitblock", block.serialize().hex())
        if result is not None:  # BIP22: a reason string when refused (a tip moved under us)
            log.info("block at height %d refused: %s", tmpl["height"], result)
            return None
        self.found += 1
        log.info("found block %s at height %d (%d transactions)", block.hash_hex(),
                 tmpl["height"], len(block.txs) - 1)
        return block.hash_hex()

    def next_wait(self) -> float:
        return self.rng.expovariate(1 / self.interval) if self.interval > 0 else float("inf")

    def run(self) -> None:
        due = time.monotonic() + self.next_wait()
        while self.running:
            if self.parent is not None and os.getppid() != self.parent:
                log.info("the process that started me is gone: stopping")
                break
            try:
                now = time.monotonic()
                if now >= due:
                    self.mine_one()
                    due = time.monotonic() + self.next_wait()
                elif self.on_tx and self.node.call("getmempoolinfo")["size"] > 0:
                    self.mine_one()
                time.sleep(min(0.2, max(0.0, due - time.monotonic())))
            except NodeUnreachable as err:
                log.info("node unreachable (%s); retrying", err)
                time.sleep(1)
            except NodeRPCError as err:
                log.info("node error: %s", err)
                time.sleep(1)


def _load_or_create_default(node: NodeClient) -> None:
    """Load the node's "default" wallet, or create it (once; someone else, e.g. a container's
    entry point, may be doing the same at the same moment: the caller just asks again)."""
    try:
        node.call("loadwallet", "default", True)
    except NodeRPCError as err:
        if err.code != -18:  # -35: loaded meanwhile; others: asked again in a moment
            time.sleep(1)
            return
        try:
            node.call("createwallet", "default", False, False, "", False, True, True)
        except NodeRPCError:
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rpc", required=True, help="the node's JSON-RPC URL")
    ap.add_argument("--cookie", type=Path, help="the node's .cookie file")
    ap.add_argument("--rpc-user", help="RPC user (instead of the cookie)")
    ap.add_argument("--rpc-password", help="RPC password")
    ap.add_argument("--address", help="where the coinbase pays (default: a new address of "
                                      "the node's default wallet)")
    ap.add_argument("--interval", type=float, default=10.0,
                    help="mean seconds between blocks (0: only --on-tx)")
    ap.add_argument("--on-tx", action="store_true", help="also mine when a transaction waits")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--tag", default="minibtc-miner", help="written in each coinbase")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="stop when the process that started it is gone (minibtc-net)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [miner] %(message)s",
                        stream=sys.stdout)
    if args.cookie is None and args.rpc_password is None:
        ap.error("give the node's --cookie, or --rpc-user and --rpc-password")
    node = NodeClient(args.rpc, args.rpc_user, args.rpc_password, cookie_file=args.cookie)
    address = args.address
    while address is None:  # (the node may still be starting)
        try:
            wallet = NodeClient(args.rpc.rstrip("/") + "/wallet/default", args.rpc_user,
                                args.rpc_password, cookie_file=args.cookie)
            address = wallet.call("getnewaddress", args.tag)
        except NodeRPCError as err:
            if err.code == -18:  # not loaded: minibtcd, as Core, makes no wallet by itself
                _load_or_create_default(node)
                continue
            log.info("waiting for the node's wallet: %s", err)
            time.sleep(1)
        except NodeUnreachable as err:
            log.info("waiting for the node's wallet: %s", err)
            time.sleep(1)
    miner = Miner(node, address, args.interval, args.on_tx, args.seed, args.tag)
    if args.exit_with_parent:
        miner.parent = os.getppid()

    def stop(*_):
        miner.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    miner.run()
    log.info("stopped after %d blocks", miner.found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
