"""-coinstatsindex: the UTXO set's statistics after every block (Core's CoinStatsIndex), so
that gettxoutsetinfo answers at any height, at once, with hash_type muhash or none.

Keys (indexes/coinstatsindex/db):
    b"s" + block hash (32) -> record (below)
    b"B" -> best block locator (node/index/base.py)
Record: the MuHash3072 state of the UTXO set after the block (numerator and denominator, 384
bytes each, as Core serializes it), its finalized hash (32), then as i64 LE: txouts, bogosize,
total amount, and the running totals Core keeps: subsidy, unspendable, prevout spent, new
outputs excluding coinbase, coinbase, unspendable genesis block, unspendable BIP30,
unspendable scripts, unclaimed rewards.

A record per block hash (not per height, as Core's) means a rewind only moves the best block:
the parent's record is still there.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields

from consensus.amounts import block_subsidy
from consensus.muhash import MuHash3072, txout_ser
from consensus.script.script import is_unspendable
from node.index.base import BaseIndex

STATS_PREFIX = b"s"
_MUHASH_SIZE = 768

# The two mainnet blocks whose coinbases were later overwritten by duplicates (BIP30):
# their outputs can never be spent.
BIP30_UNSPENDABLE = {
    91722: bytes.fromhex("00000000000271a2dc26e7667f8419f2e15416dc6955e5a6c6cdf3f2574dd08e")[::-1],
    91812: bytes.fromhex("00000000000af0aed4792b1acee3d966af36cf5def14935db8de83d6f9306f2f")[::-1],
}


@dataclass
class CoinStats:
    txouts: int = 0
    bogosize: int = 0
    total_amount: int = 0
    total_subsidy: int = 0
    total_unspendable: int = 0
    prevout_spent: int = 0
    new_outputs_ex_coinbase: int = 0
    coinbase: int = 0
    unspendables_genesis_block: int = 0
    unspendables_bip30: int = 0
    unspendables_scripts: int = 0
    unspendables_unclaimed_rewards: int = 0


_NAMES = [f.name for f in fields(CoinStats)]
_VALUES = struct.Struct(f"<{len(_NAMES)}q")


def bogo_size(script: bytes) -> int:
    """Core's GetBogoSize."""
    return 32 + 4 + 4 + 8 + 2 + len(script)


def encode_record(muhash: MuHash3072, digest: bytes, st: CoinStats) -> bytes:
    return muhash.serialize() + digest + _VALUES.pack(*(getattr(st, n) for n in _NAMES))


def decode_record(raw: bytes) -> tuple[MuHash3072, bytes, CoinStats]:
    mh = MuHash3072.deserialize(raw[:_MUHASH_SIZE])
    digest = raw[_MUHASH_SIZE:_MUHASH_SIZE + 32]
    st = CoinStats(*_VALUES.unpack_from(raw, _MUHASH_SIZE + 32))
    return mh, digest, st


class CoinStatsIndex(BaseIndex):
    name = "coinstatsindex"
    thread_name = "coinstatsidx"
    needs_undo = True

    def __init__(self, path, chain, wipe: bool = False) -> None:
        super().__init__(path, chain, wipe)
        self.halving = chain.params.subsidy_halving_interval
        self._last: tuple[bytes, MuHash3072, CoinStats] | None = None

    def _state_after(self, block_hash: bytes) -> tuple[MuHash3072, CoinStats]:
        last = self._last
        if last is not None and last[0] == block_hash:
            return last[1].copy(), CoinStats(**vars(last[2]))
        raw = self.db.get(STATS_PREFIX + block_hash)
        if raw is None:
            raise RuntimeError(f"{self.name}: no statistics for block {block_hash[::-1].hex()}")
        mh, _, st = decode_record(raw)
        return mh, st

    def append(self, batch, block, e, undo) -> None:
        height = e.height
        subsidy = block_subsidy(height, self.halving)
        if e.prev is None:
            mh, st = MuHash3072(), CoinStats()
        else:
            mh, st = self._state_after(e.prev.hash)
        st.total_subsidy += subsidy
        if e.prev is None:  # the genesis block's outputs are not in the UTXO set
            st.total_unspendable += subsidy
            st.unspendables_genesis_block += subsidy
        else:
            bip30 = BIP30_UNSPENDABLE.get(height) == e.hash
            added = []
            removed = []
            for i, tx in enumerate(block.txs):
                if i == 0 and bip30:
                    st.total_unspendable += subsidy
                    st.unspendables_bip30 += subsidy
                    continue
                txid = tx.txid
                for n, out in enumerate(tx.vout):
                    spk = out.script_pubkey
                    if is_unspendable(spk):
                        st.total_unspendable += out.value
                        st.unspendables_scripts += out.value
                        continue
                    added.append(txout_ser(txid, n, _Coin(out.value, spk, height, i == 0)))
                    if i == 0:
                        st.coinbase += out.value
                    else:
                        st.new_outputs_ex_coinbase += out.value
                    st.txouts += 1
                    st.total_amount += out.value
                    st.bogosize += bogo_size(spk)
                if i > 0:
                    for txin, coin in zip(tx.vin, undo[i - 1]):
                        p = txin.prevout
                        removed.append(txout_ser(p.hash, p.n, coin))
                        st.prevout_spent += coin.value
                        st.txouts -= 1
                        st.total_amount -= coin.value
                        st.bogosize -= bogo_size(coin.script_pubkey)
            if added:
                mh.insert_many(added)
            if removed:
                mh.remove_many(removed)
        # What the coinbase did not claim of the subsidy and the fees is unspendable too.
        unclaimed = (st.prevout_spent + st.total_subsidy) - (
            st.new_outputs_ex_coinbase + st.coinbase + st.total_unspendable)
        st.total_unspendable += unclaimed
        st.unspendables_unclaimed_rewards += unclaimed
        digest = mh.finalize()  # also folds the denominator in: a smaller record
        batch.put(STATS_PREFIX + e.hash, encode_record(mh, digest, st))
        self._last = (e.hash, mh, st)

    def lookup(self, block_hash: bytes) -> tuple[bytes, CoinStats] | None:
        """(finalized muhash, statistics) after a block indexed, or None."""
        raw = self.db.get(STATS_PREFIX + block_hash)
        if raw is None:
            return None
        _, digest, st = decode_record(raw)
        return digest, st


class _Coin:
    __slots__ = ("value", "script_pubkey", "height", "coinbase")

    def __init__(self, value: int, script_pubkey: bytes, height: int, coinbase: bool) -> None:
        self.value = value
        self.script_pubkey = script_pubkey
        self.height = height
        self.coinbase = coinbase
