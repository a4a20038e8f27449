"""Relay policy: Bitcoin Core's standardness rules (policy/policy.cpp), dust, virtual size
with the sigop adjustment, and fee rates. A transaction can be valid by consensus and still
not be relayed or mined by default; these are those extra rules, with Core's reasons."""

from __future__ import annotations

from collections.abc import Sequence

from consensus.contextual import Coin
from consensus.script.script import (
    is_p2sh,
    is_push_only,
    is_unspendable,
    last_push,
    sigop_count,
    witness_program,
)
from consensus.script.standard import (
    MULTISIG,
    NONSTANDARD,
    NULL_DATA,
    PAY_TO_ANCHOR,
    WITNESS_UNKNOWN,
    solver,
)
from consensus.script.taproot import ANNEX_TAG, TAPROOT_LEAF_MASK, TAPROOT_LEAF_TAPSCRIPT
from consensus.serialize import compact_size_len
from consensus.tx import WITNESS_SCALE_FACTOR, Transaction, TxIn, TxOut

MAX_STANDARD_TX_WEIGHT = 400_000
MIN_STANDARD_TX_NONWITNESS_SIZE = 65
MAX_STANDARD_SCRIPTSIG_SIZE = 1650
MAX_STANDARD_TX_SIGOPS_COST = 16_000
MAX_P2SH_SIGOPS = 15
MAX_STANDARD_P2WSH_SCRIPT_SIZE = 3600
MAX_STANDARD_P2WSH_STACK_ITEMS = 100
MAX_STANDARD_P2WSH_STACK_ITEM_SIZE = 80
MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE = 80
# Bytes of all nulldata scriptPubKeys of a transaction together (-datacarriersize): as Core
# since v30, as much as a standard transaction can hold.
MAX_OP_RETURN_RELAY = MAX_STANDARD_TX_WEIGHT // 4
DEFAULT_BYTES_PER_SIGOP = 20
MAX_DUST_OUTPUTS_PER_TX = 1
TX_MIN_STANDARD_VERSION = 1
TX_MAX_STANDARD_VERSION = 3
TRUC_VERSION = 3
TRUC_MAX_VSIZE = 10_000
TRUC_CHILD_MAX_VSIZE = 1_000

DEFAULT_MIN_RELAY_FEE = 100  # sat/kvB (Core's since v30: 0.1 sat/vB)
DEFAULT_INCREMENTAL_RELAY_FEE = 100  # sat/kvB
DUST_RELAY_FEE = 3000  # sat/kvB
DEFAULT_BLOCK_MIN_TX_FEE = 1  # sat/kvB (Core's -blockmintxfee since v30)
DEFAULT_CLUSTER_LIMIT = 64  # -limitclustercount: transactions in a cluster
DEFAULT_CLUSTER_SIZE_LIMIT_KVB = 101  # -limitclustersize


MAX_BIP125_RBF_SEQUENCE = 0xFFFFFFFD


def signals_rbf(vin: Sequence[TxIn]) -> bool:
    """BIP125 opt-in: some input's sequence is at most 0xfffffffd."""
    return any(i.sequence <= MAX_BIP125_RBF_SEQUENCE for i in vin)


class PolicyError(Exception):
    """A standardness rule was broken: `reason` is Core's reject reason."""

    def __init__(self, reason: str, debug: str = "") -> None:
        super().__init__(f"{reason}, {debug}" if debug else reason)
        self.reason = reason
        self.debug = debug


def fee_for(rate_sat_per_kvb: int, vsize: int) -> int:
    """CFeeRate::GetFee: fee for vsize at a rate in sat/kvB, rounded up (as Core since it
    keeps fee rates as fractions)."""
    return -(-rate_sat_per_kvb * vsize // 1000)


def virtual_size(weight: int, sigop_cost: int,
                 bytes_per_sigop: int = DEFAULT_BYTES_PER_SIGOP) -> int:
    """GetVirtualTransactionSize: weight or sigop cost (whichever is larger), in vbytes."""
    w = max(weight, sigop_cost * bytes_per_sigop)
    return (w + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR


def dust_threshold(out: TxOut, dust_relay_fee: int = DUST_RELAY_FEE) -> int:
    """GetDustThreshold: an output is dust if spending it would cost more than it is worth
    at the dust relay fee (546 sat for P2PKH, 294 for P2WPKH at the default)."""
    spk = out.script_pubkey
    if is_unspendable(spk):
        return 0
    size = 8 + compact_size_len(len(spk)) + len(spk)
    if witness_program(spk) is not None:
        size += 32 + 4 + 1 + (107 // WITNESS_SCALE_FACTOR) + 4  # witness-discounted input
    else:
        size += 32 + 4 + 1 + 107 + 4
    return fee_for(dust_relay_fee, size)


def is_dust(out: TxOut, dust_relay_fee: int = DUST_RELAY_FEE) -> bool:
    return out.value < dust_threshold(out, dust_relay_fee)


def _standard_output_type(spk: bytes, permit_bare_multisig: bool) -> str:
    kind, sols = solver(spk)
    if kind == NONSTANDARD:
        raise PolicyError("scriptpubkey")
    if kind == MULTISIG:
        m, n = sols[0][0], sols[-1][0]
        if n < 1 or n > 3 or m < 1 or m > n:
            raise PolicyError("scriptpubkey")
        if not permit_bare_multisig:
            raise PolicyError("bare-multisig")
    return kind


def dust_outputs(tx: Transaction, dust_relay_fee: int = DUST_RELAY_FEE) -> list[int]:
    """Indexes of the outputs that are dust at this rate (Core's GetDust)."""
    return [i for i, out in enumerate(tx.vout) if is_dust(out, dust_relay_fee)]


def check_standard(tx: Transaction, permit_bare_multisig: bool = True,
                   dust_relay_fee: int = DUST_RELAY_FEE,
                   max_datacarrier_bytes: int | None = MAX_OP_RETURN_RELAY) -> list[int]:
    """Core's IsStandardTx (the checks that need no inputs). max_datacarrier_bytes: the
    bytes all nulldata outputs may take together (None: -datacarrier=0, none at all).
    Returns the indexes of its dust outputs (at most one)."""
    if not TX_MIN_STANDARD_VERSION <= tx.version <= TX_MAX_STANDARD_VERSION:
        raise PolicyError("version")
    if tx.weight > MAX_STANDARD_TX_WEIGHT:
        raise PolicyError("tx-size")
    for txin in tx.vin:
        # Large enough for a 15-of-15 P2SH multisig; anything bigger is not standard.
        if len(txin.script_sig) > MAX_STANDARD_SCRIPTSIG_SIZE:
            raise PolicyError("scriptsig-size")
        if not is_push_only(txin.script_sig):
            raise PolicyError("scriptsig-not-pushonly")
    data_left = max_datacarrier_bytes or 0
    for out in tx.vout:
        kind = _standard_output_type(out.script_pubkey, permit_bare_multisig)
        if kind == NULL_DATA:
            if len(out.script_pubkey) > data_left:
                raise PolicyError("datacarrier")
            data_left -= len(out.script_pubkey)
    # One dust output is allowed by IsStandardTx (ephemeral dust, spent in the same
    # package); acceptance then requires the transaction to pay no fee.
    dust = dust_outputs(tx, dust_relay_fee)
    if len(dust) > MAX_DUST_OUTPUTS_PER_TX:
        raise PolicyError("dust")
    return dust


def check_inputs_standard(tx: Transaction, coins: Sequence[Coin]) -> None:
    """Core's AreInputsStandard: spent outputs must be of a known type, and P2SH redeem
    scripts carry at most 15 sigops."""
    for txin, coin in zip(tx.vin, coins):
        kind, _ = solver(coin.script_pubkey)
        if kind in (NONSTANDARD, WITNESS_UNKNOWN):  # (ANCHOR is standard to spend)
            raise PolicyError("bad-txns-nonstandard-inputs",
                              f"input {kind}")
        if is_p2sh(coin.script_pubkey):
            # Core evaluates the scriptSig: an empty stack (empty scriptSig) is nonstandard.
            redeem = last_push(txin.script_sig) if txin.script_sig else None
            if redeem is None:
                raise PolicyError("bad-txns-nonstandard-inputs", "p2sh scriptsig malformed")
            if sigop_count(redeem, True) > MAX_P2SH_SIGOPS:
                raise PolicyError("bad-txns-nonstandard-inputs",
                                  "p2sh redeemscript sigops exceed limit")


def check_witness_standard(tx: Transaction, coins: Sequence[Coin]) -> None:
    """Core's IsWitnessStandard: size limits on P2WSH and tapscript witnesses, no annex."""
    if not tx.has_witness():
        return
    for txin, coin in zip(tx.vin, coins):
        witness = txin.witness
        if not witness:
            continue
        spk = coin.script_pubkey
        if spk == PAY_TO_ANCHOR:
            # Keyless: a witness would let anyone change the wtxid.
            raise PolicyError("bad-witness-nonstandard")
        p2sh = False
        if is_p2sh(spk):
            redeem = last_push(txin.script_sig)
            if not redeem:
                raise PolicyError("bad-witness-nonstandard")
            spk = redeem
            p2sh = True
        wp = witness_program(spk)
        if wp is None:
            raise PolicyError("bad-witness-nonstandard")  # witness on a non-witness input
        version, program = wp
        if version == 0 and len(program) == 32:
            if len(witness[-1]) > MAX_STANDARD_P2WSH_SCRIPT_SIZE:
                raise PolicyError("bad-witness-nonstandard")
            items = witness[:-1]
            if len(items) > MAX_STANDARD_P2WSH_STACK_ITEMS:
                raise PolicyError("bad-witness-nonstandard")
            if any(len(i) > MAX_STANDARD_P2WSH_STACK_ITEM_SIZE for i in items):
                raise PolicyError("bad-witness-nonstandard")
        if version == 1 and len(program) == 32 and not p2sh:
            stack = list(witness)
            if len(stack) >= 2 and stack[-1] and stack[-1][0] == ANNEX_TAG:
                raise PolicyError("bad-witness-nonstandard")  # annexes are not relayed
            if len(stack) >= 2:  # script path: [inputs..., script, control block]
                control = stack[-1]
                if control and (control[0] & TAPROOT_LEAF_MASK) == TAPROOT_LEAF_TAPSCRIPT:
                    if any(len(i) > MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE for i in stack[:-2]):
                        raise PolicyError("bad-witness-nonstandard")


# -- packages (Core's policy/packages) --------------------------------------------------------

MAX_PACKAGE_COUNT = 25
MAX_PACKAGE_WEIGHT = 404_000


def package_error(txs: Sequence[Transaction]) -> str | None:
    """Core's IsWellFormedPackage (sorted required): the package-wide policy error, or None.
    Checked in Core's order: count, total weight, duplicates, order, conflicts."""
    if len(txs) > MAX_PACKAGE_COUNT:
        return "package-too-many-transactions"
    if len(txs) > 1 and sum(tx.weight for tx in txs) > MAX_PACKAGE_WEIGHT:
        return "package-too-large"
    later = {tx.txid for tx in txs}
    if len(later) != len(txs):
        return "package-contains-duplicates"
    for tx in txs:
        if any(i.prevout.hash in later for i in tx.vin):
            return "package-not-sorted"  # spends a transaction that comes after it
        later.discard(tx.txid)
    spent: set[tuple[bytes, int]] = set()
    for tx in txs:
        for i in tx.vin:
            key = (i.prevout.hash, i.prevout.n)
            if key in spent:
                return "conflict-in-package"
            spent.add(key)
    return None


def is_child_with_parents(txs: Sequence[Transaction]) -> bool:
    """Core's IsChildWithParents: the last transaction spends an output of every other."""
    if len(txs) < 2:
        return False
    spent = {i.prevout.hash for i in txs[-1].vin}
    return all(tx.txid in spent for tx in txs[:-1])
