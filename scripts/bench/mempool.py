#!/usr/bin/env python3
"""Mempool and mining speed on a real node over JSON-RPC:

1. accept N (default 5,000) independent signed P2WPKH transactions through
   sendrawtransaction (in JSON-RPC batches), printed as transactions/s beside raw coincurve
   ECDSA verifies/s measured in the same run (goal: at least 0.4 of the raw rate);
2. time getblocktemplate over that full mempool;
3. time generatetoaddress of 1,000 blocks.

The node runs without its mounted wallet (-disablewallet; --wallet keeps it): this measures
the node's acceptance. A mounted wallet follows the mempool over JSON-RPC, fetching every
new transaction, which costs about a sixth of this rate when thousands arrive at once.

Run: .venv/bin/python scripts/bench/mempool.py [--txs 5000] [--batch 1000] [--clients 1]
     [--blocks 1000] [--wallet]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from _common import raw_ecdsa_rate  # noqa: E402

from consensus.amounts import COIN  # noqa: E402
from consensus.hashes import hex_to_hash  # noqa: E402
from consensus.params import REGTEST  # noqa: E402
from consensus.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from tests.chainbuilder import Wallet  # noqa: E402
from tests.functional.framework import NodeProcess  # noqa: E402
from wallet.address import script_to_address  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--txs", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--blocks", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=1, help="concurrent batch submitters")
    ap.add_argument("--wallet", action="store_true", help="keep the node's mounted wallet")
    args = ap.parse_args()

    w = Wallet(b"bench")
    addr = script_to_address(w.p2wpkh, REGTEST)
    with tempfile.TemporaryDirectory() as d:
        node = NodeProcess(Path(d) / "n", "-maxmempool=300",
                           f"-par={os.cpu_count() or 1}",  # the test default is -par=0
                           *([] if args.wallet else ["-disablewallet"]))
        with node:
            node.call("generatetoaddress", 100 + -(-args.txs // 500), addr)
            # Fan out: each mature coinbase into many outputs, confirmed in one block.
            per = 500
            n_fund = -(-args.txs // per)
            outs: list[tuple[OutPoint, TxOut]] = []
            for h in range(1, n_fund + 1):
                cb = node.call("getblock", node.call("getblockhash", h), 2)["tx"][0]
                value = int(Decimal(cb["vout"][0]["value"]) * COIN)
                each = (value - 100_000) // per
                fan = Transaction(2, [TxIn(OutPoint(hex_to_hash(cb["txid"]), 0), b"",
                                           0xFFFFFFFD)], [TxOut(each, w.p2wpkh)] * per)
                w.sign(fan, [TxOut(value, w.p2wpkh)])
                node.call("sendrawtransaction", fan.serialize().hex())
                outs += [(OutPoint(fan.txid, i), TxOut(each, w.p2wpkh)) for i in range(per)]
            node.call("generatetoaddress", 1, addr)
            print(f"signing {args.txs} transactions ...", flush=True)
            raws = []
            for p, o in outs[: args.txs]:
                tx = Transaction(2, [TxIn(p, b"", 0xFFFFFFFD)], [TxOut(o.value - 2000, w.p2tr)])
                raws.append(w.sign(tx, [o]).serialize().hex())
            raw_rate = raw_ecdsa_rate()
            raw_parse = raw_ecdsa_rate(parse_key=True)
            batches = [raws[i:i + args.batch] for i in range(0, len(raws), args.batch)]

            def submit(batch: list[str]) -> None:
                reqs = [{"jsonrpc": "2.0", "id": j, "method": "sendrawtransaction",
                         "params": [r]} for j, r in enumerate(batch)]
                status, replies = node.request(reqs)
                bad = [r for r in replies if "error" in r]
                assert not bad, bad[:1]

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as ex:
                list(ex.map(submit, batches))
            accept = time.perf_counter() - t0
            assert node.call("getmempoolinfo")["size"] == args.txs
            t0 = time.perf_counter()
            tmpl = node.call("getblocktemplate", {"rules": ["segwit"]})
            gbt = time.perf_counter() - t0
            t0 = time.perf_counter()
            node.call("generatetoaddress", args.blocks, addr)
            gen = time.perf_counter() - t0
    rate = args.txs / accept
    print(f"raw coincurve ECDSA verify (1 core): {raw_rate:,.0f}/s with the key parsed once, "
          f"{raw_parse:,.0f}/s parsing the 33-byte key each time (as every real check does)")
    print(f"sendrawtransaction x {args.txs} (batches of {args.batch}, {args.clients} clients): "
          f"{accept:.2f} s = "
          f"{rate:,.0f} tx/s = {rate / raw_rate:.2f} x raw, {rate / raw_parse:.2f} x raw with "
          f"key parsing (goal 0.4)")
    print(f"getblocktemplate over {args.txs} txs: {gbt:.2f} s "
          f"({len(tmpl['transactions'])} txs selected)")
    print(f"generatetoaddress {args.blocks} blocks: {gen:.2f} s = "
          f"{args.blocks / gen:,.0f} blocks/s")


if __name__ == "__main__":
    main()
