"""Kill -9 a node at random moments of every operation that changes its chain state (issue 18):
an import (-loadblock), invalidateblock, reconsiderblock, a reorg to a longer chain given with
submitblock, preciousblock, generatetoaddress and pruneblockchain. After every kill the node
must restart by itself to a state a clean run reaches too:

- its UTXO set (gettxoutsetinfo's hash_serialized_3) equals that of a replay of its active
  chain, computed here from the blocks alone (an independent model, not the node's code);
- its flags and UTXO set agree: no valid stored chain with more work than the tip is left
  unconnected (getchaintips), the tip is not on an invalidated block;
- it can mine on top (generatetoaddress), and finishing the interrupted operation gives the
  operation's result;
- a peer that syncs from it reaches the same tip and the same UTXO digest.

The short operations are made long enough to be killed inside, with no hook in the node: a
preciousblock switches over a hundred full blocks, a pruneblockchain first flushes ~90,000
coin changes left by wide blocks; each kill comes within a share of the same operation's
time measured just before.

KILL_SEED picks other moments (the default is fixed so a failure can be replayed).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path

from consensus.amounts import COIN
from consensus.block import Block
from consensus.contextual import Coin
from consensus.muhash import txout_ser
from consensus.params import REGTEST
from consensus.script.script import is_unspendable
from tests.chainbuilder import OP_TRUE, Built, ChainBuilder, Wallet, spend_tx
from tests.functional.framework import NodeProcess, RPCFailure
from tests.unit.test_reorg import write_blk_file
from wallet.address import script_to_address

ADDR = script_to_address(Wallet().p2wpkh, REGTEST)
KILLS = 4  # per operation (the import gets one more): 29 kills in all


def hexh(h: bytes) -> str:
    return h[::-1].hex()


class Replay:
    """The UTXO set of any chain, rebuilt from its blocks alone: the reference a recovered
    node is compared with. Blocks the test built are known; the node's own (mined) blocks
    are fetched once."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, Block] = {REGTEST.genesis_hash: REGTEST.genesis}
        self._digests: dict[bytes, str] = {}

    def add(self, blocks: list[Block]) -> None:
        for b in blocks:
            self.blocks[b.hash] = b

    def fetch_active(self, node: NodeProcess) -> None:
        """Learn every block of the node's active chain (batched RPC)."""
        height = node.call("getblockcount")
        hashes = _batch(node, [("getblockhash", [h]) for h in range(height + 1)])
        unknown = [h for h in hashes if bytes.fromhex(h)[::-1] not in self.blocks]
        for raw in _batch(node, [("getblock", [h, 0]) for h in unknown]):
            b = Block.from_bytes(bytes.fromhex(raw))
            self.blocks[b.hash] = b

    def chain(self, tip: bytes) -> list[Block]:
        out = []
        h = tip
        while h != REGTEST.genesis_hash:
            b = self.blocks[h]
            out.append(b)
            h = b.header.prev_hash
        return out[::-1]  # heights 1..tip

    def utxos(self, tip: bytes) -> dict[tuple[bytes, int], Coin]:
        coins: dict[tuple[bytes, int], Coin] = {}
        for height, b in enumerate(self.chain(tip), 1):
            for i, tx in enumerate(b.txs):
                if i:
                    for txin in tx.vin:
                        del coins[(txin.prevout.hash, txin.prevout.n)]
                for n, out in enumerate(tx.vout):
                    if not is_unspendable(out.script_pubkey):
                        coins[(tx.txid, n)] = Coin(out.value, out.script_pubkey, height, i == 0)
        return coins

    def digest(self, tip: bytes) -> str:
        """Core's hash_serialized_3 of the chain ending at tip, as gettxoutsetinfo shows it."""
        d = self._digests.get(tip)
        if d is None:
            h = hashlib.sha256()
            coins = self.utxos(tip)
            for key in sorted(coins):
                h.update(txout_ser(key[0], key[1], coins[key]))
            d = self._digests[tip] = hexh(hashlib.sha256(h.digest()).digest())
        return d


def _batch(node: NodeProcess, calls: list[tuple[str, list]], chunk: int = 500) -> list:
    out = []
    for i in range(0, len(calls), chunk):
        payload = [{"jsonrpc": "1.0", "id": j, "method": m, "params": p}
                   for j, (m, p) in enumerate(calls[i:i + chunk])]
        _, replies = node.request(payload)
        for r in sorted(replies, key=lambda r: r["id"]):
            assert not r.get("error"), r
            out.append(r["result"])
    return out


def spends(coins: dict, height: int, rng: random.Random, n: int) -> tuple[list, int]:
    """Up to n transactions spending mature OP_TRUE coins of `coins` (taken out of it), and
    their fees."""
    usable = sorted(k for k, c in coins.items()
                    if c.script_pubkey == OP_TRUE and c.value > 100_000
                    and (not c.coinbase or c.height <= height - 100))
    txs, fees = [], 0
    for key in rng.sample(usable, min(n, len(usable))):
        c = coins.pop(key)
        outs = 2 if c.value > 10_000_000 else 1
        each = (c.value - 1000) // outs
        txs.append(spend_tx([key], [each] * outs))
        fees += c.value - each * outs
    return txs, fees


def build_main(cb: ChainBuilder, rng: random.Random, n_blocks: int, per_block: int
               ) -> list[Block]:
    """101 blocks, then n_blocks spending their coinbases and the outputs that follow."""
    blocks = cb.chain(REGTEST.genesis, 101)
    spendable = [(b.txs[0].txid, 0, 50 * COIN) for b in blocks[:-100]]
    for _ in range(n_blocks):
        txs = []
        fees = 0
        for _ in range(min(per_block, len(spendable))):
            txid, n, value = spendable.pop(rng.randrange(len(spendable)))
            outs = rng.randint(1, 3) if value > 10_000_000 else 1
            each = (value - 1000) // outs
            tx = spend_tx([(txid, n)], [each] * outs)
            fees += value - each * outs
            txs.append(tx)
        blocks.append(cb.next_block(blocks[-1], txs, fees=fees))
        for tx in txs:
            spendable.extend((tx.txid, i, o.value) for i, o in enumerate(tx.vout)
                             if o.value >= 100_000)
    return blocks


def build_branch(cb: ChainBuilder, replay: Replay, fork: Block, length: int,
                 rng: random.Random, tag: bytes, every: int = 4, per: int = 8) -> list[Block]:
    """A competing branch of `length` blocks on `fork`, spending coins of the fork's chain
    (`per` transactions in every `every`th block)."""
    out = []
    parent = fork
    height = cb.built[fork.hash].height
    coins = replay.utxos(fork.hash)
    for i in range(length):
        height += 1
        txs, fees = spends(coins, height, rng, per) if i % every == 0 else ([], 0)
        b = cb.next_block(parent, txs, fees=fees, tag=tag if i == 0 else b"")
        replay.add([b])
        out.append(b)
        parent = b
    return out


class WideBlocks:
    """Blocks on a node's tip that change many coins at once: each pays one coin to `width`
    OP_TRUE outputs, spending the outputs of the matching block of the previous batch (the
    first batch spends the chain's largest coins). With a cache large enough to hold them,
    a batch leaves 2 x blocks x width coin changes unflushed, and the UTXO set (so the
    replay) does not grow from batch to batch."""

    def __init__(self, node: NodeProcess, cb: ChainBuilder, replay: Replay, blocks: int,
                 width: int) -> None:
        self.node, self.cb, self.replay = node, cb, replay
        self.blocks, self.width = blocks, width
        self.last: list[tuple[list[tuple[bytes, int]], int]] = []  # (outpoints, value)

    def submit(self) -> None:
        node, cb, replay = self.node, self.cb, self.replay
        replay.fetch_active(node)
        tip = bytes.fromhex(node.call("getbestblockhash"))[::-1]
        height = node.call("getblockcount")
        parent = replay.blocks[tip]
        cb.built.setdefault(tip, Built(parent, height, parent.header.time))  # (if it mined it)
        coins = None if self.last else replay.utxos(tip)
        batch = []
        for i in range(self.blocks):
            if coins is None:
                keys, value = self.last[i]
            else:
                key = max((k for k, c in coins.items() if c.script_pubkey == OP_TRUE
                           and (not c.coinbase or c.height <= height - 99)),
                          key=lambda k: coins[k].value)
                keys, value = [key], coins.pop(key).value
            each = value // self.width
            tx = spend_tx(keys, [each] * self.width)
            # (a second apart: batch after batch stays within the 2 hours ahead allowed)
            b = cb.next_block(parent, [tx], fees=value - each * self.width, time_delta=1)
            replay.add([b])
            assert node.call("submitblock", b.serialize().hex()) is None
            batch.append(([(tx.txid, n) for n in range(self.width)], each * self.width))
            parent = b
        assert node.call("getbestblockhash") == hexh(parent.hash)
        self.last = batch


class Killer:
    """Runs one RPC call in a thread, SIGKILLs the node after a random delay, and restarts it;
    counts how many kills landed while the call was still running."""

    def __init__(self, node: NodeProcess, rng: random.Random) -> None:
        self.node = node
        self.rng = rng
        self.kills = 0
        self.during = 0
        self.by_op: dict[str, list[int]] = {}  # operation -> [kills, kills during it]
        self.shrink: dict[str, float] = {}
        self.moments: list[str] = []  # each kill_during's delay / window, inside or after

    def kill_during(self, method: str, *params, window: tuple[float, float],
                    restart_args: tuple[str, ...] = ()) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                self.node.call(method, *params)
            except (OSError, RPCFailure):
                pass  # the node died under it
            finally:
                done.set()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        # A kill that came after the call ended shrinks the next window for this call.
        lo, hi = window
        hi = min(hi, self.shrink.get(method, hi))
        delay = self.rng.uniform(lo, hi)
        time.sleep(delay)
        during = not done.is_set()
        self.count(method, during)
        self.moments.append(f"{method} {delay:.3f}/{hi:.3f} s {'in' if during else 'after'}")
        self.kill()
        if not during:
            self.shrink[method] = hi / 2
        t.join(30)
        self.node.start(*restart_args)

    def count(self, op: str, during: bool) -> None:
        self.during += during
        n = self.by_op.setdefault(op, [0, 0])
        n[0] += 1
        n[1] += during

    def kill(self) -> None:
        self.node.kill()
        self.kills += 1


def wait_for_height(node: NodeProcess, height: int) -> None:
    deadline = time.time() + 120
    while node.call("getblockcount") < height:
        assert time.time() < deadline, "the import did not finish"
        time.sleep(0.02)


def in_active_chain(node: NodeProcess, block: str) -> bool:
    h = node.call("getblockheader", block)["height"]
    return node.call("getblockcount") >= h and node.call("getblockhash", h) == block


def check(node: NodeProcess, replay: Replay, what: str, mine: bool = True) -> str:
    """The recovered node's state is one a clean run reaches: returns its tip."""
    best = node.call("getbestblockhash")
    info = node.call("gettxoutsetinfo")
    assert info["bestblock"] == best, what
    replay.fetch_active(node)
    assert info["hash_serialized_3"] == replay.digest(bytes.fromhex(best)[::-1]), \
        f"{what}: UTXO set differs from a replay of the chain at {info['height']}"
    tips = node.call("getchaintips")
    active = [t for t in tips if t["status"] == "active"]
    assert len(active) == 1 and active[0]["hash"] == best, (what, active)
    for t in tips:  # nothing valid and stored with more work was left behind
        if t["status"] in ("valid-fork", "valid-headers"):
            assert t["height"] <= active[0]["height"], (what, t, active)
    if mine:
        h = info["height"]
        mined = node.call("generatetoaddress", 1, ADDR)
        assert node.call("getblockcount") == h + 1, what
        info = node.call("gettxoutsetinfo")
        replay.fetch_active(node)
        assert info["hash_serialized_3"] == replay.digest(bytes.fromhex(mined[0])[::-1]), what
        best = mined[0]
    return best


def peer_syncs(peer: NodeProcess, node: NodeProcess, what: str) -> None:
    """A clean node syncing from the recovered one reaches its tip and UTXO digest."""
    peer.call("addnode", node.p2p_addr, "onetry")
    want = node.call("getbestblockhash")
    deadline = time.time() + 120
    while peer.call("getbestblockhash") != want:
        assert time.time() < deadline, f"{what}: the peer did not sync"
        time.sleep(0.2)
    assert peer.call("gettxoutsetinfo")["hash_serialized_3"] == \
        node.call("gettxoutsetinfo")["hash_serialized_3"], what
    for p in peer.call("getpeerinfo"):
        peer.call("disconnectnode", "", p["id"])


def test_kill_during_chain_operations(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("KILL_SEED", "18")))
    cb = ChainBuilder()
    replay = Replay()
    main = build_main(cb, random.Random(1), 200, 40)
    replay.add(main)
    blk = tmp_path / "main.dat"
    write_blk_file(blk, main)

    node = NodeProcess(tmp_path / "a", "-fastprune", "-dbcache=4")
    peer = NodeProcess(tmp_path / "peer", "-listen=0")
    k = Killer(node, rng)
    t0 = time.time()
    try:
        # -- import: -loadblock, killed while it runs, resumed by the next start ------------
        # (the peer imports the same file first, unhurt: how long an import takes)
        peer.start(f"-loadblock={blk}")
        t = time.time()
        wait_for_height(peer, len(main))
        t_import = time.time() - t
        have = 0
        for _ in range(KILLS + 1):
            node.start(f"-loadblock={blk}")
            time.sleep(rng.uniform(0, t_import * (1 - have / len(main))))
            during = node.call("getblockcount") < len(main)
            k.kill()
            k.count("import", during)
            node.start()
            height = node.call("getblockcount")
            have = min(height, len(main) - 1)
            # (no block mined one short of the file's last: it would tie with that block,
            # and the first seen keeps the tip)
            check(node, replay, "import", mine=height != len(main) - 1)
            node.stop()
        node.start(f"-loadblock={blk}")
        wait_for_height(node, len(main))
        assert in_active_chain(node, hexh(main[-1].hash))
        check(node, replay, "import finished")
        peer_syncs(peer, node, "after the import")

        # -- invalidateblock / reconsiderblock of a block 120 deep -------------------------
        x = hexh(main[180].hash)
        t = time.time()
        node.call("invalidateblock", x)
        t_inv = time.time() - t
        t = time.time()
        node.call("reconsiderblock", x)
        t_rec = time.time() - t
        for _ in range(KILLS):
            k.kill_during("invalidateblock", x, window=(0, 1.2 * t_inv))
            check(node, replay, "invalidateblock")
            node.call("invalidateblock", x)  # finished: the block is off the active chain
            assert not in_active_chain(node, x)
            check(node, replay, "invalidateblock finished", mine=False)
            k.kill_during("reconsiderblock", x, window=(0, 1.2 * t_rec))
            check(node, replay, "reconsiderblock")
            node.call("reconsiderblock", x)  # finished: back on the longest chain
            assert in_active_chain(node, x)
            check(node, replay, "reconsiderblock finished", mine=False)
        peer_syncs(peer, node, "after invalidate/reconsider")

        # -- a reorg to a longer branch given with submitblock -----------------------------
        for r in range(KILLS):
            fork = main[rng.randrange(150, 200)]
            height = node.call("getblockcount")
            f_height = cb.built[fork.hash].height
            branch = build_branch(cb, replay, fork, height - f_height + 3, rng, b"r%d" % r)
            for b in branch[:-3]:  # as much work as the tip: no reorg yet
                node.call("submitblock", b.serialize().hex())
            assert node.call("getblockcount") == height
            # The next block makes the branch the most-work chain: the reorg runs in its
            # submitblock. (The branch is one block longer than needed, so it still wins
            # once a block was mined after the restart.)
            k.kill_during("submitblock", branch[-3].serialize().hex(),
                          window=(0, 1.5 * t_inv))
            check(node, replay, "reorg")
            for b in branch:  # finished: the branch has the most work
                node.call("submitblock", b.serialize().hex())
            assert node.call("getbestblockhash") == hexh(branch[-1].hash)
            check(node, replay, "reorg finished", mine=False)
            if r < KILLS - 1:
                node.call("invalidateblock", hexh(branch[0].hash))  # back to the main chain
        peer_syncs(peer, node, "after the reorgs")

        # -- preciousblock: a branch with as much work as the tip made precious ------------
        # A deep branch of full blocks, so the switch (disconnect, then connect, over a
        # hundred blocks) lasts long enough to be killed inside; the same switch is timed
        # first (there and back), and the kill comes between 10% and 60% of that time.
        for r in range(KILLS):
            active = node.call("getblockcount")
            top = branch[-1]  # the last reorg's branch: the tip's chain is built on it
            f_height = cb.built[top.hash].height - rng.randrange(100, 140)
            fork = replay.blocks[bytes.fromhex(node.call("getblockhash", f_height))[::-1]]
            rival = build_branch(cb, replay, fork, active - f_height, rng, b"p%d" % r,
                                 every=1, per=40)
            _batch(node, [("submitblock", [b.serialize().hex()]) for b in rival], chunk=20)
            tip = node.call("getbestblockhash")
            assert tip != hexh(rival[-1].hash)  # a tie: the block seen first stays
            t = time.time()
            node.call("preciousblock", hexh(rival[-1].hash))
            t_prec = time.time() - t
            assert node.call("getbestblockhash") == hexh(rival[-1].hash)
            node.call("preciousblock", tip)  # and back
            assert node.call("getbestblockhash") == tip
            k.kill_during("preciousblock", hexh(rival[-1].hash),
                          window=(0.1 * t_prec, 0.6 * t_prec))
            check(node, replay, "preciousblock", mine=False)
            node.call("preciousblock", hexh(rival[-1].hash))  # finished: the rival is the tip
            assert node.call("getbestblockhash") == hexh(rival[-1].hash)
            branch = rival
            check(node, replay, "preciousblock finished", mine=False)
        check(node, replay, "after preciousblock")  # mines: no more ties
        peer_syncs(peer, node, "after preciousblock")

        # -- generatetoaddress ---------------------------------------------------------------
        t = time.time()
        node.call("generatetoaddress", 300, ADDR)
        t_gen = time.time() - t
        print(f"import {t_import:.2f} s, invalidate {t_inv:.2f} s, reconsider {t_rec:.2f} s, "
              f"generate {t_gen:.2f} s")
        for _ in range(KILLS):
            k.kill_during("generatetoaddress", 300, ADDR, window=(0, 1.2 * t_gen))
            check(node, replay, "generatetoaddress")
        peer_syncs(peer, node, "after generatetoaddress")

        # -- pruneblockchain (manual pruning of -fastprune's small files) ------------------
        # A prune flushes the UTXO set first (then writes the index, then deletes files).
        # With a cache large enough to hold them, a batch of wide blocks submitted before
        # each prune leaves ~90,000 coin changes for that flush, so the prune lasts long
        # enough to be killed inside; the first prune after a batch is timed, and the kills
        # come between 10% and 70% of that time. Each prune goes 30 blocks further into
        # blocks 102-301, full ones (several -fastprune files per step): each has files to
        # delete.
        prune_args = ("-prune=1", "-dbcache=300")
        node.stop()
        node.start(*prune_args)
        wide = WideBlocks(node, cb, replay, 3, 15_000)
        wide.submit()
        check(node, replay, "wide blocks", mine=False)  # (flushed: the next batch spends)
        wide.submit()
        t = time.time()
        assert node.call("pruneblockchain", 150) > 101
        t_prune = time.time() - t
        check(node, replay, "pruneblockchain (timed)", mine=False)
        for r in range(KILLS):
            wide.submit()
            target = 180 + 30 * r
            k.kill_during("pruneblockchain", target, window=(0.1 * t_prune, 0.7 * t_prune),
                          restart_args=prune_args)
            check(node, replay, "pruneblockchain")
            pruned = node.call("pruneblockchain", target)
            assert node.call("getblockchaininfo")["pruneheight"] == pruned + 1
            node.call("getblock", node.call("getblockhash", pruned + 1))  # still readable
            check(node, replay, "pruneblockchain finished", mine=False)
        node.stop()
        node.start(*prune_args)
        check(node, replay, "pruned and restarted")
        peer_syncs(peer, node, "after pruning")
        log = (node.chain_dir / "debug.log").read_text(errors="replace")
        assert "Traceback" not in log
        print(f"prune {t_prune:.2f} s; {k.kills} kills, {k.during} during the operation "
              f"({k.by_op}), {time.time() - t0:.0f} s")
        print("; ".join(k.moments))
        assert k.during >= k.kills // 2, "too few kills landed inside an operation"
        for op in ("preciousblock", "pruneblockchain"):  # (short ones: timed to fit)
            assert k.by_op[op][1] >= KILLS // 2, f"too few kills landed inside {op}"
    finally:
        node.stop()
        peer.stop()
