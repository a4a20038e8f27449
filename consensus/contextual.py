"""Checks that need the chain around a block: header context, lock times, BIP34, weight,
input values and maturity, sequence locks (BIP68) and signature-operation cost.

Pure functions: the caller (node.chain) supplies heights, median times and spent coins.
Reasons are Bitcoin Core's (validation.cpp, consensus/tx_verify.cpp).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from consensus.amounts import MAX_MONEY, block_subsidy, money_range
from consensus.block import Block, BlockHeader
from consensus.checks import (
    MAX_BLOCK_SIGOPS_COST,
    MAX_BLOCK_WEIGHT,
    check_witness_malleation,
    legacy_sigop_count,
)
from consensus.errors import ValidationError
from consensus.params import ChainParams
from consensus.script.opcodes import OP_1
from consensus.script.script import (
    is_p2sh,
    last_push,
    push_int,
    sigop_count,
    witness_program,
)
from consensus.tx import (
    LOCKTIME_THRESHOLD,
    SEQUENCE_FINAL,
    SEQUENCE_LOCKTIME_DISABLE_FLAG,
    SEQUENCE_LOCKTIME_GRANULARITY,
    SEQUENCE_LOCKTIME_MASK,
    SEQUENCE_LOCKTIME_TYPE_FLAG,
    WITNESS_SCALE_FACTOR,
    Transaction,
)

MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60
MEDIAN_TIME_SPAN = 11

# Lock-time verification flags (Core's LOCKTIME_VERIFY_SEQUENCE).
LOCKTIME_VERIFY_SEQUENCE = 1 << 0

# The two mainnet blocks whose coinbases duplicate earlier ones (BIP30 exceptions).
BIP30_REPEATS = {
    91842: bytes.fromhex("00000000000a4d0a398161ffc163c503763b1f4360639393e0e4c8e300e0caec")[::-1],
    91880: bytes.fromhex("00000000000743f190a18c5577a3c2d2a1f610ae9601ac046a38084ccb7cd721")[::-1],
}
BIP34_IMPLIES_BIP30_LIMIT = 1_983_702


class Coin:
    """An unspent output with the height and coinbase flag of the transaction that made it."""

    __slots__ = ("value", "script_pubkey", "height", "coinbase")

    def __init__(self, value: int, script_pubkey: bytes, height: int, coinbase: bool) -> None:
        self.value = value
        self.script_pubkey = script_pubkey
        self.height = height
        self.coinbase = coinbase

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Coin) and (
            self.value,
            self.script_pubkey,
            self.height,
            self.coinbase,
        ) == (other.value, other.script_pubkey, other.height, other.coinbase)

    def __repr__(self) -> str:
        return (f"Coin({self.value}, {self.script_pubkey.hex()}, h={self.height}, "
                f"cb={self.coinbase})")


# -- headers ---------------------------------------------------------------------------------


def check_header_contextual(
    header: BlockHeader,
    height: int,
    expected_bits: int,
    prev_median_time: int,
    now: int,
    params: ChainParams,
) -> None:
    """Core's ContextualCheckBlockHeader, given the values derived from the previous block."""
    if header.bits != expected_bits:
        raise ValidationError("bad-diffbits", 100, "incorrect proof of work")
    if header.time <= prev_median_time:
        raise ValidationError("time-too-old", 100, "block's timestamp is too early")
    if header.time > now + MAX_FUTURE_BLOCK_TIME:
        # Not a permanent failure: the block may become valid later (no ban, not cached).
        raise ValidationError("time-too-new", 0, "block timestamp too far in the future")
    # Reject versions that the buried deployments made obsolete.
    v = header.version
    if (
        (v < 2 and height >= params.bip34_height)
        or (v < 3 and height >= params.bip66_height)
        or (v < 4 and height >= params.bip65_height)
    ):
        vx = f"0x{v & 0xFFFFFFFF:08x}"
        raise ValidationError(f"bad-version({vx})", 100, f"rejected nVersion={vx} block")


# -- transactions ----------------------------------------------------------------------------


def is_final_tx(tx: Transaction, height: int, block_time: int) -> bool:
    """Core's IsFinalTx: the lock time has passed, or every input opted out with a final
    sequence number."""
    lt = tx.locktime
    if lt == 0:
        return True
    if lt < (height if lt < LOCKTIME_THRESHOLD else block_time):
        return True
    return all(txin.sequence == SEQUENCE_FINAL for txin in tx.vin)


def check_block_contextual(
    block: Block, height: int, prev_median_time: int, params: ChainParams
) -> None:
    """Core's ContextualCheckBlock: finality, BIP34 height, witness commitment, weight."""
    # BIP113: with CSV active, lock times are compared to the previous block's median time.
    cutoff = prev_median_time if height >= params.csv_height else block.header.time
    for tx in block.txs:
        if not is_final_tx(tx, height, cutoff):
            raise ValidationError("bad-txns-nonfinal", 100, "non-final transaction")

    if height >= params.bip34_height:
        expect = push_int(height)  # BIP34: `CScript() << height`
        if block.txs[0].vin[0].script_sig[: len(expect)] != expect:
            raise ValidationError("bad-cb-height", 100, "block height mismatch in coinbase")

    check_witness_malleation(block, height >= params.segwit_height)

    # After the witness checks, so that a witness-stripped block is reported as mutated.
    if block.weight > MAX_BLOCK_WEIGHT:
        raise ValidationError("bad-blk-weight", 100, "weight limit failed")


def check_tx_inputs(tx: Transaction, coins: Sequence[Coin], spend_height: int,
                    coinbase_maturity: int = 100) -> int:
    """Core's Consensus::CheckTxInputs given the coins spent (in input order). Returns the fee."""
    value_in = 0
    for coin in coins:
        if coin.coinbase and spend_height - coin.height < coinbase_maturity:
            raise ValidationError(
                "bad-txns-premature-spend-of-coinbase", 0,
                f"tried to spend coinbase at depth {spend_height - coin.height}",
            )
        value_in += coin.value
        if not money_range(coin.value) or not money_range(value_in):
            raise ValidationError("bad-txns-inputvalues-outofrange", 100,
                                  "inputs values out of range")
    value_out = tx.total_out()
    if value_in < value_out:
        raise ValidationError(
            "bad-txns-in-belowout", 100, f"value in ({value_in}) < value out ({value_out})"
        )
    fee = value_in - value_out
    if not money_range(fee):
        raise ValidationError("bad-txns-fee-outofrange", 100, "fee out of range")
    return fee


def calculate_sequence_locks(
    tx: Transaction,
    flags: int,
    prev_heights: list[int],
    median_time_at: Callable[[int], int],
) -> tuple[int, int]:
    """Core's CalculateSequenceLocks: (min height, min time) that must have passed, -1 if none.

    median_time_at(h) gives the median time past of the block at height h on the chain the
    transaction is being connected to. prev_heights[i] is the height of input i's coin
    (entries of inputs without a lock are set to 0, as Core does).
    """
    min_height = -1
    min_time = -1
    # Cast as unsigned, as Core does: a "negative" version does not disable BIP68.
    if not (tx.version >= 2 and flags & LOCKTIME_VERIFY_SEQUENCE):
        return min_height, min_time
    for i, txin in enumerate(tx.vin):
        seq = txin.sequence
        if seq & SEQUENCE_LOCKTIME_DISABLE_FLAG:
            prev_heights[i] = 0
            continue
        coin_height = prev_heights[i]
        if seq & SEQUENCE_LOCKTIME_TYPE_FLAG:
            # Time locks count from the median time of the block before the coin's block.
            coin_time = median_time_at(max(coin_height - 1, 0))
            lock = coin_time + ((seq & SEQUENCE_LOCKTIME_MASK) << SEQUENCE_LOCKTIME_GRANULARITY) - 1
            min_time = max(min_time, lock)
        else:
            min_height = max(min_height, coin_height + (seq & SEQUENCE_LOCKTIME_MASK) - 1)
    return min_height, min_time


def evaluate_sequence_locks(height: int, prev_median_time: int, locks: tuple[int, int]) -> bool:
    """Core's EvaluateSequenceLocks for a block at `height` whose parent has this median time."""
    min_height, min_time = locks
    return not (min_height >= height or min_time >= prev_median_time)


# -- signature-operation cost ----------------------------------------------------------------


def p2sh_sigop_count(tx: Transaction, coins: Sequence[Coin]) -> int:
    """Core's GetP2SHSigOpCount: accurate sigops of each P2SH redeem script."""
    n = 0
    for txin, coin in zip(tx.vin, coins):
        if is_p2sh(coin.script_pubkey):
            redeem = last_push(txin.script_sig)
            if redeem:
                n += sigop_count(redeem, True)
    return n


def _witness_sigops(version: int, program: bytes, witness: list[bytes]) -> int:
    if version == 0:
        if len(program) == 20:
            return 1
        if len(program) == 32 and witness:
            return sigop_count(witness[-1], True)
    return 0  # future versions (and taproot, which budgets by weight) count nothing


def witness_sigop_count(script_sig: bytes, spk: bytes, witness: list[bytes]) -> int:
    """Core's CountWitnessSigOps for one input (WITNESS flag assumed on)."""
    n = len(spk)  # the two common programs first, without building (version, program)
    if n == 22 and spk[0] == 0 and spk[1] == 20:
        return 1  # P2WPKH
    if n == 34 and spk[0] == OP_1 and spk[1] == 32:
        return 0  # P2TR: taproot budgets sigops by weight
    wp = witness_program(spk)
    if wp is not None:
        return _witness_sigops(wp[0], wp[1], witness)
    if is_p2sh(spk):
        redeem = last_push(script_sig)
        if redeem:
            wp = witness_program(redeem)
            if wp is not None:
                return _witness_sigops(wp[0], wp[1], witness)
    return 0


def transaction_sigop_cost(
    tx: Transaction, coins: Sequence[Coin], p2sh: bool, witness: bool
) -> int:
    """Core's GetTransactionSigOpCost: legacy and P2SH sigops weigh 4, witness sigops 1."""
    cost = legacy_sigop_count(tx) * WITNESS_SCALE_FACTOR
    if tx.is_coinbase():
        return cost
    if p2sh:
        cost += p2sh_sigop_count(tx, coins) * WITNESS_SCALE_FACTOR
    if witness:
        for txin, coin in zip(tx.vin, coins):
            cost += witness_sigop_count(txin.script_sig, coin.script_pubkey, txin.witness)
    return cost


def block_reward_ok(block: Block, height: int, fees: int, params: ChainParams) -> None:
    limit = fees + block_subsidy(height, params.subsidy_halving_interval)
    paid = block.txs[0].total_out()
    if paid > limit:
        raise ValidationError(
            "bad-cb-amount", 100, f"coinbase pays too much (actual={paid} vs limit={limit})"
        )


def check_fees_in_range(fees: int) -> None:
    if not 0 <= fees <= MAX_MONEY:
        raise ValidationError(
            "bad-txns-accumulated-fee-outofrange", 100, "accumulated fee in the block out of range"
        )


def check_sigop_cost(cost: int) -> None:
    if cost > MAX_BLOCK_SIGOPS_COST:
        raise ValidationError("bad-blk-sigops", 100, "too many sigops")
