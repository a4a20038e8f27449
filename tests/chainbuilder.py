"""Build regtest chains for tests: blocks with a BIP34 coinbase, optional witness commitment,
correct bits and increasing times, mined at regtest difficulty.

Coinbases pay to OP_TRUE by default, so tests can spend them without keys; the signed-spend
helpers in tests/wallettools.py build real P2WPKH and P2TR spends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from consensus.amounts import block_subsidy
from consensus.block import Block
from consensus.hashes import sha256
from consensus.params import REGTEST, ChainParams
from consensus.script.standard import p2wsh_script
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from tests.blocktools import make_block, make_coinbase, solve

OP_TRUE = b"\x51"
# P2WSH of OP_TRUE: spendable with witness [OP_TRUE], no signature.
P2WSH_TRUE = p2wsh_script(sha256(OP_TRUE))


@dataclass
class Built:
    block: Block
    height: int
    time: int


@dataclass
class ChainBuilder:
    params: ChainParams = REGTEST
    start_time: int = field(default_factory=lambda: int(time.time()) - 30 * 24 * 3600)
    built: dict[bytes, Built] = field(default_factory=dict)

    def __post_init__(self) -> None:
        g = self.params.genesis
        self.built[g.hash] = Built(g, 0, g.header.time)

    def next_block(
        self,
        parent: Block | bytes,
        txs: list[Transaction] = (),
        *,
        spk: bytes = OP_TRUE,
        fees: int = 0,
        extra_value: int = 0,
        time_delta: int = 600,
        block_time: int | None = None,
        version: int = 0x20000000,
        bits: int | None = None,
        coinbase: Transaction | None = None,
        witness: bool | None = None,
        tag: bytes = b"",
    ) -> Block:
        """A solved block on `parent`. `fees` is added to the coinbase (with extra_value to
        overpay); `tag` makes otherwise identical blocks on different branches differ."""
        ph = parent if isinstance(parent, bytes) else parent.hash
        p = self.built[ph]
        height = p.height + 1
        if block_time is None:
            block_time = max(p.time, self.start_time) + time_delta
        if coinbase is None:
            value = block_subsidy(height, self.params.subsidy_halving_interval) + fees + extra_value
            coinbase = make_coinbase(height, value, spk, extra=tag)
        if witness is None:
            witness = any(tx.has_witness() for tx in txs)
        block = make_block(ph, height, list(txs), time=block_time, witness=witness,
                           bits=bits if bits is not None else 0x207FFFFF, coinbase=coinbase,
                           mine=False)
        block.header.version = version
        solve(block)
        self.built[block.hash] = Built(block, height, block_time)
        return block

    def chain(self, parent: Block | bytes, n: int, **kw) -> list[Block]:
        out = []
        for i in range(n):
            b = self.next_block(parent, tag=kw.pop("tag", b"") if i == 0 else b"", **kw)
            out.append(b)
            parent = b
        return out


def spend_tx(prevs: list[tuple[bytes, int]], values: list[int], spk: bytes = OP_TRUE,
             witness: list[bytes] | None = None, sequence: int = 0xFFFFFFFF,
             locktime: int = 0, version: int = 2) -> Transaction:
    """Spend OP_TRUE (or, with witness=[OP_TRUE], P2WSH_TRUE) outputs."""
    vin = [TxIn(OutPoint(h, n), b"", sequence, list(witness) if witness else []) for h, n in prevs]
    return Transaction(version, vin, [TxOut(v, spk) for v in values], locktime)


class Wallet:
    """Deterministic keys paying to P2WPKH and P2TR (key path), and signing their spends, so
    chains carry real signatures."""

    def __init__(self, seed: bytes = b"chainbuilder") -> None:
        from consensus.hashes import hash160
        from consensus.script.keys import pubkey, taproot_tweak_pubkey, xonly_pubkey
        from consensus.script.standard import p2tr_script, p2wpkh_script

        self.secret = sha256(seed)
        self.p2wpkh = p2wpkh_script(hash160(pubkey(self.secret)))
        self.p2tr = p2tr_script(taproot_tweak_pubkey(xonly_pubkey(self.secret))[0])

    def sign(self, tx: Transaction, spent: list[TxOut]) -> Transaction:
        """Sign every input of tx, which spends `spent` (outputs of this wallet's scripts)."""
        from consensus.script.keys import sign_p2tr_key_input, sign_p2wpkh_input

        for i, out in enumerate(spent):
            if out.script_pubkey == self.p2wpkh:
                sign_p2wpkh_input(tx, i, self.secret, out.value)
            elif out.script_pubkey == self.p2tr:
                sign_p2tr_key_input(tx, i, self.secret, spent)
            else:
                raise ValueError("not this wallet's output")
        return tx
