"""Building, signing and sending the wallet's transactions, as Core's wallet/spend.cpp and
feebumper.cpp do: coin selection (wallet.coinselect) at a fee rate given in sat/vB or from
the node's estimatesmartfee, a change output of the recipients' kind when it is worth making,
anti-fee-sniping lock time, BIP125 signalling by default, fees taken from the recipients on
request, and bumpfee replacing an unconfirmed transaction by one paying more.

Signing goes through a PSBT (the same path an outside signer takes): create, update, sign,
finalize, extract.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from consensus.hashes import hash160
from consensus.script.script import is_p2pkh, is_p2sh, witness_program
from consensus.serialize import compact_size_len
from consensus.tx import OutPoint, Transaction, TxIn, TxOut
from wallet import coinselect as cs
from wallet.amounts import format_btc
from wallet.errors import (
    RPC_INVALID_PARAMETER,
    RPC_WALLET_ERROR,
    RPC_WALLET_INSUFFICIENT_FUNDS,
    WalletError,
)
from wallet.keys import ECDSA_MAX_SIG_SIZE, ECDSA_SIG_SIZE, dummy_ecdsa_signature
from wallet.nodeclient import NodeClient, NodeRPCError
from wallet.psbt import PSBT
from wallet.signer import sign, update
from wallet.wallet import Coin, Wallet

log = logging.getLogger("wallet")

SEQUENCE_RBF = 0xFFFFFFFD  # BIP125 opt-in, lock time enforced
SEQUENCE_FINAL_LOCKTIME = 0xFFFFFFFE  # no RBF, lock time enforced (anti-fee-sniping)
DEFAULT_CONF_TARGET = 6
MIN_RELAY_FEE = 100  # sat/kvB, Core's -minrelaytxfee default
MIN_TX_FEE = 1000  # sat/kvB, Core's -mintxfee default
INCREMENTAL_RELAY_FEE = 1000  # sat/kvB, what a replacement must add per vbyte (BIP125)
LONG_TERM_FEE_RATE = 10_000  # sat/kvB, Core's -consolidatefeerate
MAX_TX_FEE = 10_000_000  # Core's -maxtxfee, 0.1 BTC
DEFAULT_FALLBACK_FEE = 20_000  # sat/kvB: -fallbackfee (minibtc's default; Core's is 0, off)
MAX_STANDARD_TX_WEIGHT = 400_000  # node/policy.py's (the wallet does not import node)
DUST_RELAY_FEE = 3000  # sat/kvB
MAX_ANTI_SNIPING_AGE = 8 * 3600  # seconds: an older tip means we may be behind; use 0

MIN_STANDARD_TX_NONWITNESS_SIZE = 65  # node/policy.py's
DUMMY_NESTED_P2WPKH_WEIGHT = 91 * 4  # Core's DUMMY_NESTED_P2WPKH_INPUT_SIZE, in weight

# Weight of spending one output of each kind, signed by this wallet (Core's estimates from
# descriptors: an ECDSA signature of 71 bytes with its sighash byte, R ground low; 72 with
# max_sig, for inputs a signer that may not grind signs). A legacy input counts the byte of
# its empty witness, as in a transaction with a witness (signed_tx_weight takes it off when
# none has one).
def _witness_p2wpkh(max_sig: bool) -> int:  # items, <sig>, <pubkey>
    return 1 + 1 + (ECDSA_MAX_SIG_SIZE if max_sig else ECDSA_SIG_SIZE) + 1 + 33


def input_weight(script: bytes, max_sig: bool = False) -> int:
    wp = witness_program(script)
    if wp is not None and wp[0] == 1:
        return 41 * 4 + 1 + 1 + 64  # key path: one 64-byte signature (SIGHASH_DEFAULT)
    if wp is not None and wp[0] == 0:
        return 41 * 4 + _witness_p2wpkh(max_sig)
    if is_p2sh(script):  # P2SH-P2WPKH: scriptSig pushes the 22-byte redeem script
        return (41 + 23) * 4 + _witness_p2wpkh(max_sig)
    if is_p2pkh(script):  # scriptSig: <71-byte sig> <33-byte key>, plus an empty witness
        sig = ECDSA_MAX_SIG_SIZE if max_sig else ECDSA_SIG_SIZE
        return (41 + 1 + sig + 1 + 33) * 4 + 1
    raise WalletError(RPC_WALLET_ERROR, f"cannot estimate the size of spending {script.hex()}")


def _dummy_signed(script: bytes, store: Any, max_sig: bool) -> tuple[bytes, list[bytes]] | None:
    from wallet.sign import _Signer, produce_signature

    class _Dummy(_Signer):
        def create_sig(self, pubkey: bytes, script_code: bytes, sigversion: int) -> bytes:
            return dummy_ecdsa_signature(max_sig)

    try:
        script_sig, witness, solved = produce_signature(
            _Dummy(store, None, 0, 0, 1, None), script)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001  (a script the solver does not take apart)
        return None
    return (script_sig, witness) if solved else None


def max_input_weight(script: bytes, store: Any, max_sig: bool = False) -> int | None:
    """The largest weight an input spending script can have, signed with the keys and
    scripts the store knows (Core's CalculateMaximumSignedInputSize: a dummy signer of
    71-byte signatures, or 72-byte ones with max_sig); None when it cannot be solved."""
    signed = _dummy_signed(script, store, max_sig)
    if signed is None:
        return None
    script_sig, witness = signed
    size = 32 + 4 + compact_size_len(len(script_sig)) + len(script_sig) + 4
    wit = (compact_size_len(len(witness)) + sum(compact_size_len(len(x)) + len(x)
                                                for x in witness)) if witness else 1
    return size * 4 + wit


def _single_key_kind(coin_script: bytes, exp: Any) -> bool:
    """Whether input_weight sizes spending the coin: one compressed key, spent as P2PKH,
    P2WPKH, P2SH-P2WPKH or a Taproot key path."""
    if len(exp.keys) != 1 or len(exp.keys[0].pubkey) != 33:
        return False
    return is_p2pkh(coin_script) or not exp.subscripts or (
        is_p2sh(coin_script) and len(exp.subscripts) == 1
        and len(next(iter(exp.subscripts.values()))) == 22)


def wallet_input_weight(wallet: Wallet, coin: Coin) -> int:
    """The weight of spending one of the wallet's coins: the usual figure for single-key
    kinds, else the dummy-signed size from what its descriptor gives (multisig, scripts, a
    P2PKH of an uncompressed key)."""
    owner = wallet.owner(coin.script)
    if owner is None:
        return input_weight(coin.script)
    acc, index = owner
    exp = acc.expansion(index)
    if _single_key_kind(coin.script, exp):
        return input_weight(coin.script)
    weight = max_input_weight(coin.script, _expansion_store(exp))
    return input_weight(coin.script) if weight is None else weight


def _expansion_store(exp: Any) -> Any:
    from wallet.sign import KeyStore

    store = KeyStore()
    for key in exp.keys:
        store.pubkeys[hash160(key.pubkey)] = key.pubkey
    for sub in exp.subscripts.values():
        store.add_script(sub)
    return store


def spends_witness(wallet: Wallet, coin: Coin) -> bool:
    """Whether spending the coin puts data in the witness (Core's IsSegwit of the coin's
    descriptor): a witness program, or a P2SH whose redeem script is one. A P2SH the wallet
    does not know the redeem script of counts as one (the estimate errs high)."""
    if witness_program(coin.script) is not None:
        return True
    if not is_p2sh(coin.script):
        return False
    owner = wallet.owner(coin.script)
    if owner is None:
        return True
    redeem = owner[0].expansion(owner[1]).subscripts.get(coin.script[2:22])
    return redeem is None or witness_program(redeem) is not None


def signed_tx_weight(wallet: Wallet, coins: list[Coin], weights: list[int],
                     output_scripts: list[bytes], given: Container[int] = frozenset()) -> int:
    """The largest weight of the transaction spending coins (weights[i] the weight of input
    i, from input_weight and the like, or given by the user when i is in given) to outputs
    of those scripts, once signed: Core's CalculateMaximumSignedTxSize, the figure its wallet
    sets the fee from. The segwit marker and flag count only when an input spends a witness
    program, and so do the empty witnesses of the legacy inputs."""
    segwit = any(spends_witness(wallet, c) for c in coins)
    weight = (4 + 4 + compact_size_len(len(coins)) + compact_size_len(len(output_scripts))) * 4
    weight += sum(output_weight(s) for s in output_scripts) + sum(weights)
    if segwit:
        weight += 2
    else:
        weight -= sum(1 for i in range(len(coins)) if i not in given)
    return weight


def tx_overhead_weight(n_inputs: int, n_outputs: int) -> int:
    """Version, lock time, the two counts, and the segwit marker and flag."""
    return (4 + 4 + compact_size_len(n_inputs) + compact_size_len(n_outputs)) * 4 + 2


def output_weight(script: bytes) -> int:
    return (8 + compact_size_len(len(script)) + len(script)) * 4


def dust_threshold(script: bytes) -> int:
    """Core's GetDustThreshold at the 3 sat/vB dust relay fee (0 for an unspendable
    OP_RETURN output)."""
    if script[:1] == b"\x6a":
        return 0
    size = 8 + compact_size_len(len(script)) + len(script)
    size += 67 if witness_program(script) is not None else 148
    return DUST_RELAY_FEE * size // 1000


@dataclass
class Recipient:
    script: bytes
    amount: int
    subtract_fee: bool = False


@dataclass
class Built:
    tx: Transaction
    fee: int
    change_pos: int  # -1 without change
    coins: list[Coin]
    algorithm: str


def fee_rate_from_node(node: NodeClient, conf_target: int = DEFAULT_CONF_TARGET,
                       estimate_mode: str = "unset",
                       fallback: int = DEFAULT_FALLBACK_FEE) -> int:
    """sat/kvB from the node's estimatesmartfee, never under the minimum relay fee. Without
    an estimate (the node has not seen enough blocks), the fallback fee rate (-fallbackfee;
    0: refused), never under the mempool's minimum fee (Core's GetMinimumFeeRate)."""
    from wallet.amounts import parse_btc

    mode = "conservative" if estimate_mode.lower() == "unset" else estimate_mode
    try:
        est = node.call("estimatesmartfee", conf_target, mode)
        if "feerate" in est:
            return max(MIN_RELAY_FEE, parse_btc(est["feerate"]))
        if not fallback:
            raise WalletError(RPC_WALLET_ERROR, "Fee estimation failed. Fallbackfee is "
                              "disabled. Wait a few blocks or set a fee rate (fee_rate in "
                              "sat/vB).")
        floor = parse_btc(node.call("getmempoolinfo")["mempoolminfee"])
    except NodeRPCError as err:
        raise WalletError(RPC_WALLET_ERROR, f"Fee estimation failed: {err.message}") from None
    return max(MIN_RELAY_FEE, fallback, floor)


def change_type_for(wallet: Wallet, recipients: list[Recipient], change_type: str | None) -> str:
    """Core's TransactionChangeType: as asked; else bech32m when a recipient is taproot; else
    bech32."""
    if change_type is not None:
        return change_type
    if wallet.change_type is not None:  # -changetype
        return wallet.change_type
    if wallet.address_type == "legacy":
        return "legacy"
    for r in recipients:
        wp = witness_program(r.script)
        if wp is not None and wp[0] == 1:
            return "bech32m"
    return "bech32"


def anti_fee_sniping_locktime(wallet: Wallet, rng: random.Random, now: int) -> int:
    """The tip height (sometimes up to 100 below, as Core), or 0 if the tip looks stale."""
    if wallet.tip_height <= 0 or now - wallet.tip_time > MAX_ANTI_SNIPING_AGE:
        return 0
    height = wallet.tip_height
    if rng.randrange(10) == 0:
        height = max(0, height - rng.randrange(100))
    return height


def _insufficient(needed: int, available: int) -> WalletError:
    return WalletError(RPC_WALLET_INSUFFICIENT_FUNDS,
                       f"Insufficient funds: need {format_btc(needed)} BTC, "
                       f"have {format_btc(available)} BTC available")


def create_transaction(wallet: Wallet, recipients: list[Recipient], fee_rate: int, *,
                       replaceable: bool = True, change_type: str | None = None,
                       change_script: bytes | None = None, preset: list[Coin] | None = None,
                       add_inputs: bool = True, locktime: int | None = None,
                       rng: random.Random | None = None, now: int | None = None,
                       exclude_txids: frozenset[bytes] = frozenset(),
                       change_position: int | None = None,
                       preset_sequences: dict[tuple[bytes, int], int] | None = None,
                       include_unsafe: bool = False, min_depth: int | None = None,
                       max_depth: int | None = None,
                       ancestors: Callable[[bytes], tuple[int, int]] | None = None,
                       weights: dict[tuple[bytes, int], int] | None = None,
                       given_weights: frozenset[tuple[bytes, int]] = frozenset(),
                       max_tx_weight: int | None = None,
                       override_min_fee: bool = False) -> Built:
    """Select coins and build the unsigned transaction paying recipients at fee_rate
    (sat/kvB). Coins created by exclude_txids are not used (bumpfee: the outputs of the
    transaction being replaced, and of its children, go away with it). change_position puts
    the change there (random by default); preset_sequences keeps the preset inputs first,
    in their order, with those sequences (fundrawtransaction). weights sizes preset inputs
    (those in given_weights as the user gave them). max_tx_weight bounds the
    transaction's weight (Core's max_tx_weight option); override_min_fee takes an explicit
    fee rate as it is, under the wallet's minimum too (fundrawtransaction,
    walletcreatefundedpsbt)."""
    rng = rng or random.Random()
    now = int(wallet.clock()) if now is None else now
    if not recipients:
        raise WalletError(RPC_INVALID_PARAMETER, "Transaction must have at least one recipient")
    if max_tx_weight is None:
        max_tx_weight = MAX_STANDARD_TX_WEIGHT
    min_tx_weight = MIN_STANDARD_TX_NONWITNESS_SIZE * 4
    if not min_tx_weight <= max_tx_weight <= MAX_STANDARD_TX_WEIGHT:
        raise WalletError(RPC_WALLET_ERROR, "Maximum transaction weight must be between "
                          f"{min_tx_weight} and {MAX_STANDARD_TX_WEIGHT}")
    for r in recipients:
        if r.amount < 0 or (r.amount == 0 and r.script[:1] != b"\x6a"):
            raise WalletError(RPC_WALLET_ERROR, "Transaction amount too small")
        if r.amount < dust_threshold(r.script):  # (Core: subtracting the fee or not)
            raise WalletError(RPC_WALLET_ERROR, "Transaction amount too small")
    if not override_min_fee:
        _check_fee_rate(wallet, fee_rate)
    # Core's tx_noinputs_size: version, lock time, input count and the witness marker and
    # flag counted as whole vbytes, the output count and the recipients' outputs
    noinputs_weight = (10 + compact_size_len(len(recipients))) * 4 + sum(
        output_weight(r.script) for r in recipients)
    subtract = [i for i, r in enumerate(recipients) if r.subtract_fee]
    preset = list(preset or [])
    change_error = ""  # why no change script can be had (Core: only an error if needed)
    if change_script is None:
        kind = change_type_for(wallet, recipients, change_type)
        try:
            wallet.active_account(kind, True)
            probe = wallet.peek_script(kind, True)
            if probe is None:
                change_error = "Error: Keypool ran out, please call keypoolrefill first"
        except WalletError as err:
            probe, change_error = None, err.message
        change_probe = probe if probe is not None else b""
    else:
        change_probe = change_script
    taken = {p.outpoint for p in preset}
    available = [] if not add_inputs else [
        c for c in wallet.coins(skip_locked=True, include_unsafe=include_unsafe)
        if c.outpoint not in taken and c.txid not in exclude_txids
        and (min_depth is None or c.depth >= min_depth)
        and (max_depth is None or c.depth <= max_depth)]
    # Core's coin eligibility: with -walletrejectlongchains (the default), an unconfirmed coin
    # whose transaction has too many unconfirmed ancestors, or an ancestor with too many
    # descendants (the mempool's counts), would make a chain the mempool refuses
    too_long: list[Coin] = []
    counts: dict[bytes, tuple[int, int]] = {}
    if ancestors is not None:
        for c in available:
            if c.depth == 0 and c.txid not in counts:
                counts[c.txid] = ancestors(c.txid)
    if ancestors is not None and wallet.reject_long_chains:
        ok = []
        for c in available:
            if c.depth == 0:
                n_anc, n_desc = counts[c.txid]
                if n_anc > wallet.max_ancestors - 1 or n_desc > wallet.max_descendants - 1:
                    too_long.append(c)
                    continue
            ok.append(c)
        available = ok
    n_inputs_max = len(available) + len(preset)
    overhead = tx_overhead_weight(n_inputs_max, len(recipients) + 1)
    fixed = overhead + sum(output_weight(r.script) for r in recipients)
    amounts = sum(r.amount for r in recipients)
    if amounts == 0 and fee_rate == 0 and not preset:
        raise WalletError(RPC_WALLET_ERROR, "Transaction requires one destination of non-zero "
                          "value, a non-zero feerate, or a pre-selected input")
    # (without a change script, Core sizes its spend as a P2SH-P2WPKH input's)
    change_in = input_weight(change_probe) if change_probe else DUMMY_NESTED_P2WPKH_WEIGHT
    params = cs.Params(fee_rate, LONG_TERM_FEE_RATE, output_weight(change_probe),
                       change_in, dust_threshold(change_probe) + 1,
                       subtract_fee=bool(subtract))
    weights = weights or {}

    def weight_of(c: Coin) -> int:  # (preset inputs may come with their weight)
        w = weights.get(c.outpoint)
        return wallet_input_weight(wallet, c) if w is None else w

    preset_weight = sum(weight_of(c) for c in preset)
    if preset and not add_inputs and fixed + preset_weight > max_tx_weight:
        raise WalletError(RPC_WALLET_ERROR, "Transaction too large")
    preset_value = sum(c.value for c in preset)
    if subtract:
        target = amounts - preset_value
    else:
        target = amounts + cs.fee_for(fixed + preset_weight, fee_rate) - preset_value
    chosen: list[Coin] = list(preset)
    algorithm = "preset"
    if preset and not add_inputs and target > 0:
        raise WalletError(RPC_WALLET_ERROR, "The preselected coins total amount does not cover "
                          "the transaction target. Please allow other inputs to be "
                          "automatically selected or include more coins manually")
    if target > 0 or not preset:
        cands = [cs.Candidate(c, c.value, weight_of(c)) for c in available]
        max_selection = max_tx_weight - noinputs_weight
        if max_selection <= 0:
            raise WalletError(RPC_WALLET_ERROR, "Maximum transaction weight is less than "
                              "transaction weight without inputs")
        try:
            if sum(max(0, params.effective(c)) for c in cands) < target:
                raise cs.InsufficientFunds(target, 0)
            sel = _select_in_tiers(wallet, cands, max(target, 0), params, rng, max_selection,
                                   counts, include_unsafe)
        except cs.ChangeTooHeavy:
            raise WalletError(RPC_WALLET_ERROR, "Maximum transaction weight is too low, can "
                              "not accommodate change output") from None
        except cs.MaxWeightExceeded:
            raise WalletError(RPC_WALLET_ERROR, "The inputs size exceeds the maximum weight. "
                              "Please try sending a smaller amount or manually consolidating "
                              "your wallet's UTXOs") from None
        except cs.InsufficientFunds:
            total = sum(c.value for c in available) + preset_value
            if too_long and total + sum(c.value for c in too_long) >= amounts:
                raise WalletError(RPC_WALLET_ERROR, "Unconfirmed UTXOs are available, but "
                                  "spending them creates a chain of transactions that will be "
                                  "rejected by the mempool") from None
            needed = amounts if subtract else amounts + cs.fee_for(fixed + preset_weight,
                                                                   fee_rate)
            raise _insufficient(needed, total) from None
        chosen += [c.key for c in sel.coins]  # type: ignore[misc]
        algorithm = sel.algorithm
    total_in = sum(c.value for c in chosen)
    in_weights = [weight_of(c) for c in chosen]
    if fixed + sum(in_weights) > max_tx_weight:  # (Core: selection within the limit fails)
        if preset and not add_inputs:
            raise WalletError(RPC_WALLET_ERROR, "Transaction too large")
        raise WalletError(RPC_WALLET_ERROR, (
            "The combination of the pre-selected inputs and the wallet automatic inputs "
            "selection exceeds the transaction maximum weight. " if preset else
            "The inputs size exceeds the maximum weight. ")
            + "Please try sending a smaller amount or manually consolidating your wallet's "
            "UTXOs")
    # The fee is set from the signed size of the transaction as built (Core sets it from
    # CalculateMaximumSignedTxSize once the coins are chosen): its own input and output
    # counts, the segwit marker only with a witness input; selection counted more.
    given = {i for i, c in enumerate(chosen) if c.outpoint in given_weights}
    scripts = [r.script for r in recipients]
    weight_no_change = signed_tx_weight(wallet, chosen, in_weights, scripts, given)
    weight_change = signed_tx_weight(wallet, chosen, in_weights, scripts + [change_probe], given)
    outputs = [TxOut(r.amount, r.script) for r in recipients]
    change_value = 0
    if subtract:
        leftover = total_in - amounts
        if leftover < 0:
            raise _insufficient(amounts, total_in)
        if leftover >= params.min_change:
            fee = cs.fee_for(weight_change, fee_rate)
            change_value = leftover
            reduce = fee
        else:
            fee = cs.fee_for(weight_no_change, fee_rate)
            reduce = fee - leftover  # the leftover pays part of the fee (or tops up)
        share, rest = divmod(reduce, len(subtract))
        for k, i in enumerate(subtract):
            outputs[i].value -= share + (rest if k == 0 else 0)
            if outputs[i].value < dust_threshold(outputs[i].script_pubkey):
                raise WalletError(RPC_WALLET_ERROR, "The transaction amount is too small to "
                                  "pay the fee")
        if change_value == 0:
            fee = total_in - sum(o.value for o in outputs)
    else:
        change_value = total_in - amounts - cs.fee_for(weight_change, fee_rate)
        if change_value >= params.min_change:
            fee = cs.fee_for(weight_change, fee_rate)
        else:
            change_value = 0
            fee = total_in - amounts
            if fee < cs.fee_for(weight_no_change, fee_rate):
                raise _insufficient(amounts + cs.fee_for(weight_no_change, fee_rate), total_in)
    _check_max_fee(wallet, fee)
    change_pos = -1
    if change_value:
        if not change_probe:
            raise WalletError(RPC_WALLET_ERROR, "Transaction needs a change address, but we "
                              f"can't generate it. {change_error}")
        script = change_probe if change_script is not None else wallet.new_script(
            change_type_for(wallet, recipients, change_type), True)
        if change_position is not None and change_position >= 0:
            change_pos = min(change_position, len(outputs))
        else:
            change_pos = rng.randrange(len(outputs) + 1)
        outputs.insert(change_pos, TxOut(change_value, script))
    seq = SEQUENCE_RBF if replaceable else SEQUENCE_FINAL_LOCKTIME
    # the inputs chosen by hand first, in their order (Core's selection order), then the
    # others in random order
    added = chosen[len(preset):]
    rng.shuffle(added)
    chosen = preset + added
    sequences = preset_sequences or {}
    vin = [TxIn(OutPoint(c.txid, c.n), b"", sequences.get(c.outpoint, seq)) for c in chosen]
    lt = anti_fee_sniping_locktime(wallet, rng, now) if locktime is None else locktime
    return Built(Transaction(2, vin, outputs, lt), fee, change_pos, chosen, algorithm)


def _eligibility_tiers(wallet: Wallet, include_unsafe: bool
                       ) -> list[tuple[int, int, int, int]]:
    """Core's coin eligibility filters, tried in order until one can fund the transaction:
    (confirmations of our own coins, of others' coins, most unconfirmed ancestors, most
    descendants). Confirmed coins first (others' with six confirmations), then our own
    unconfirmed change in ever longer chains, then (include_unsafe) others' unconfirmed
    coins, and without -walletrejectlongchains any chain."""
    anc, desc = max(1, wallet.max_ancestors), max(1, wallet.max_descendants)
    tiers = [(1, 6, 0, 0), (1, 1, 0, 0), (0, 1, 2, 2),
             (0, 1, min(4, anc // 3), min(4, desc // 3)), (0, 1, anc // 2, desc // 2),
             (0, 1, anc - 1, desc - 1)]
    if include_unsafe:
        tiers.append((0, 0, anc - 1, desc - 1))
    if not wallet.reject_long_chains:
        tiers.append((0, 1, 1 << 62, 1 << 62))
    return tiers


def _select_in_tiers(wallet: Wallet, cands: list[cs.Candidate], target: int,
                     params: cs.Params, rng: random.Random, max_selection: int,
                     counts: dict[bytes, tuple[int, int]], include_unsafe: bool
                     ) -> cs.Selection:
    """Core's AutomaticCoinSelection: the coins each eligibility filter lets through, the
    first selection that funds the transaction; else the first detailed error (weight),
    else insufficient funds."""
    from_me: dict[bytes, bool] = {}

    def mine(coin: Coin) -> bool:
        if coin.txid not in from_me:
            wtx = wallet.txs.get(coin.txid)
            from_me[coin.txid] = wtx is not None and wallet.debit(wtx) > 0
        return from_me[coin.txid]

    errors: list[cs.InsufficientFunds] = []
    tried: set[frozenset] = set()
    for conf_mine, conf_theirs, max_anc, max_desc in _eligibility_tiers(wallet, include_unsafe):
        pool = []
        for cand in cands:
            coin: Coin = cand.key  # type: ignore[assignment]
            if coin.depth < (conf_mine if mine(coin) else conf_theirs):
                continue
            n_anc, n_desc = counts.get(coin.txid, (1, 1)) if coin.depth == 0 else (0, 0)
            if n_anc > max_anc or n_desc > max_desc:
                continue
            pool.append(cand)
        key = frozenset(id(c) for c in pool)
        if not pool or key in tried:
            continue
        tried.add(key)
        if sum(max(0, params.effective(c)) for c in pool) < target:
            continue
        try:
            return cs.select_coins(pool, target, params, rng, max_selection)
        except (cs.MaxWeightExceeded, cs.ChangeTooHeavy) as err:
            errors.append(err)
        except cs.InsufficientFunds:
            continue
    if errors:
        raise errors[0]
    raise cs.InsufficientFunds(target, 0)


def _check_fee_rate(wallet: Wallet, fee_rate: int) -> None:
    """Core's rule: never under the required rate (-mintxfee, and the relay minimum)."""
    required = max(wallet.min_tx_fee, wallet.min_relay_fee)
    if fee_rate < required:
        raise WalletError(RPC_WALLET_ERROR, f"Fee rate ({fee_rate / 1000:.3f} sat/vB) is lower "
                          f"than the minimum fee rate setting ({required / 1000:.3f} sat/vB)")


def _check_max_fee(wallet: Wallet, fee: int) -> None:
    if fee > wallet.max_tx_fee:
        raise WalletError(RPC_WALLET_ERROR, "Fee exceeds maximum configured by user (e.g. "
                          "-maxtxfee, maxfeerate)")


@dataclass
class SendAllOutput:
    address: str
    script: bytes
    amount: int | None  # None: a share of what is left


def create_sendall(wallet: Wallet, outputs: list[SendAllOutput], fee_rate: int, *,
                   inputs: list[Coin] | None = None, send_max: bool = False,
                   min_depth: int = 0, max_depth: int | None = None,
                   replaceable: bool = True, locktime: int | None = None,
                   rng: random.Random | None = None, now: int | None = None) -> Built:
    """Core's sendall: every spendable coin (or exactly `inputs`), no change. Outputs with an
    amount get it; those without share what is left after them and the fee, the first of
    them also taking the indivisible rest. send_max leaves out coins worth less than the
    fee of spending them."""
    rng = rng or random.Random()
    now = int(wallet.clock()) if now is None else now
    _check_fee_rate(wallet, fee_rate)
    if inputs is None:
        coins = [c for c in wallet.coins(skip_locked=True) if c.depth >= min_depth
                 and (max_depth is None or c.depth <= max_depth)]
        if send_max:
            coins = [c for c in coins
                     if cs.fee_for(wallet_input_weight(wallet, c), fee_rate) <= c.value]
    else:
        coins = list(inputs)
    weight = signed_tx_weight(wallet, coins, [wallet_input_weight(wallet, c) for c in coins],
                              [o.script for o in outputs])
    fee = cs.fee_for(weight, fee_rate)
    total_in = sum(c.value for c in coins)
    _check_max_fee(wallet, fee)
    effective = total_in - fee
    if effective <= 0:
        raise WalletError(RPC_WALLET_INSUFFICIENT_FUNDS, "Total value of UTXO pool too low to "
                          "pay for transaction" + (", try using lower feerate." if send_max else
                          ". Try using lower feerate or excluding uneconomic UTXOs with "
                          "'send_max' option."))
    if weight > MAX_STANDARD_TX_WEIGHT:
        raise WalletError(RPC_WALLET_ERROR, "Transaction too large.")
    claimed = sum(o.amount for o in outputs if o.amount is not None)
    if claimed > total_in:
        raise WalletError(RPC_WALLET_INSUFFICIENT_FUNDS,
                          "Assigned more value to outputs than available funds.")
    remainder = effective - claimed
    if remainder < 0:
        raise WalletError(RPC_WALLET_INSUFFICIENT_FUNDS,
                          "Insufficient funds for fees after creating specified outputs.")
    each, rest = divmod(remainder, sum(1 for o in outputs if o.amount is None))
    vout = []
    for o in outputs:
        if o.amount is None:
            vout.append(TxOut(each + rest, o.script))
            rest = 0
            if vout[-1].value < dust_threshold(o.script):
                raise WalletError(RPC_WALLET_INSUFFICIENT_FUNDS,
                                  "Dynamically assigned remainder results in dust output.")
        else:
            vout.append(TxOut(o.amount, o.script))
            if o.amount < dust_threshold(o.script):
                raise WalletError(RPC_INVALID_PARAMETER, f"Specified output amount to "
                                  f"{o.address} is below dust threshold.")
    seq = SEQUENCE_RBF if replaceable else SEQUENCE_FINAL_LOCKTIME
    vin = [TxIn(OutPoint(c.txid, c.n), b"", seq) for c in coins]
    lt = anti_fee_sniping_locktime(wallet, rng, now) if locktime is None else locktime
    return Built(Transaction(2, vin, vout, lt), fee, -1, coins, "sendall")


def sign_psbt(wallet: Wallet, tx: Transaction) -> tuple[PSBT, bool]:
    """The transaction as a PSBT with the wallet's data and signatures, finalized where it
    can be; and whether every input is."""
    psbt = PSBT.from_tx(tx)
    update(wallet, psbt)
    sign(wallet, psbt)
    complete = psbt.finalize()
    if not complete:  # scripts the quick signer does not know: Core's whole FillPSBT
        from wallet.rpc_psbt import fill_psbt

        complete = fill_psbt(wallet, psbt, None, True, True)
    return psbt, complete


def sign_transaction(wallet: Wallet, tx: Transaction) -> Transaction:
    """Sign every input through a PSBT; raises unless all inputs end up signed."""
    psbt, complete = sign_psbt(wallet, tx)
    if not complete:
        raise WalletError(RPC_WALLET_ERROR, "Signing transaction failed")
    return psbt.extract()


def broadcast(wallet: Wallet, node: NodeClient, tx: Transaction, *, replaces: bytes | None = None,
              comment: str | None = None) -> None:
    """Hand the transaction to the node and record it (Core's CommitTransaction). One the
    node's mempool refuses is still recorded, out of the mempool (it counts in the
    "nonmempool" balance) and logged, as Core does; a replacement (bumpfee) that is refused
    is an error."""
    try:
        node.call("sendrawtransaction", tx.to_hex())
    except NodeRPCError as err:
        if replaces is not None:
            raise WalletError(err.code, f"Transaction rejected by the node: {err.message}"
                              ) from None
        log.info("[%s] CommitTransaction(): Transaction cannot be broadcast immediately, %s",
                 wallet.name, err.message)
        wallet.add_tx(tx, in_mempool=False, comment=comment)
        return
    wallet.add_tx(tx, in_mempool=True, replaces=replaces, comment=comment)


def mempool_ancestors(node: NodeClient) -> Callable[[bytes], tuple[int, int]]:
    """Core's GetTransactionAncestry for a mempool transaction: its ancestor count (itself
    included) and the largest descendant count among it and its ancestors ((1, 1) when the
    node does not know it)."""
    def count(txid: bytes) -> tuple[int, int]:
        try:
            entry = node.call("getmempoolentry", txid[::-1].hex())
            parents = node.call("getmempoolancestors", txid[::-1].hex(), True)
        except NodeRPCError:
            return 1, 1
        desc = max([int(entry["descendantcount"])]
                   + [int(p["descendantcount"]) for p in parents.values()])
        return int(entry["ancestorcount"]), desc
    return count


def send(wallet: Wallet, node: NodeClient, recipients: list[Recipient], fee_rate: int, *,
         replaceable: bool = True, comment: str | None = None,
         change_type: str | None = None) -> tuple[Transaction, Built]:
    wallet.require_unlocked()
    try:
        built = create_transaction(wallet, recipients, fee_rate, replaceable=replaceable,
                                   change_type=change_type,
                                   ancestors=mempool_ancestors(node))
    except WalletError as err:  # Core's SendMoney answers every CreateTransaction error so
        if err.code == RPC_WALLET_ERROR:
            raise WalletError(RPC_WALLET_INSUFFICIENT_FUNDS, err.message) from None
        raise
    tx = sign_transaction(wallet, built.tx)
    broadcast(wallet, node, tx, comment=comment)
    return tx, built


def bump_fee(wallet: Wallet, node: NodeClient, txid: bytes, fee_rate: int | None,
             replaceable: bool = True, sign_it: bool = True) -> dict:
    """Replace an unconfirmed wallet transaction by one paying a higher fee rate: same
    inputs (more if needed), same recipients, smaller change. Returns txid/origfee/fee, or
    with sign_it=False the unsigned replacement as a PSBT (psbtbumpfee)."""
    wtx = wallet.txs.get(txid)
    if wtx is None:
        raise WalletError(-5, "Invalid or non-wallet transaction id")
    if wtx.height is not None:
        raise WalletError(RPC_WALLET_ERROR, "Transaction has been mined, or is conflicted "
                          "with a mined transaction")
    if wtx.replaced_by is not None:
        raise WalletError(RPC_WALLET_ERROR, "Cannot bump transaction "
                          f"{txid[::-1].hex()} which was already bumped by transaction "
                          f"{wtx.replaced_by[::-1].hex()}")
    if not wtx.in_mempool:
        raise WalletError(RPC_WALLET_ERROR, "Transaction is not in the mempool (confirmed, "
                          "replaced or conflicted)")
    if not any(i.sequence < SEQUENCE_FINAL_LOCKTIME for i in wtx.tx.vin):
        raise WalletError(RPC_WALLET_ERROR, "Transaction is not BIP 125 replaceable")
    for n in wallet.credits[txid]:
        for sp in wallet.spenders.get((txid, n), ()):
            if wallet.txs[sp].active:
                raise WalletError(RPC_INVALID_PARAMETER, "Transaction has descendants in the "
                                  "wallet")
    preset = []
    for txin in wtx.tx.vin:
        parent = wallet.txs.get(txin.prevout.hash)
        if parent is None or txin.prevout.n not in wallet.credits[parent.txid]:
            raise WalletError(RPC_WALLET_ERROR, "Transaction contains inputs that don't belong "
                              "to this wallet")
        out = parent.tx.vout[txin.prevout.n]
        acc_id, index = wallet.scripts[out.script_pubkey]
        preset.append(Coin(parent.txid, txin.prevout.n, out.value, out.script_pubkey, acc_id,
                           index, wallet.depth(parent), parent.tx.is_coinbase(),
                           wallet.is_trusted(parent)))
    old_fee = wallet.fee_of(wtx)
    assert old_fee is not None
    old_vsize = wtx.tx.vsize
    min_rate = (old_fee * 1000 + old_vsize - 1) // old_vsize + INCREMENTAL_RELAY_FEE
    if fee_rate is None:
        fee_rate = max(fee_rate_from_node(node, fallback=wallet.fallback_fee), min_rate)
    elif fee_rate < min_rate:
        raise WalletError(RPC_INVALID_PARAMETER, f"Insufficient total fee rate: must be at "
                          f"least {min_rate / 1000:.3f} sat/vB (the original's plus "
                          f"{INCREMENTAL_RELAY_FEE / 1000:.3f} sat/vB)")
    recipients, change_script = [], None
    for out in wtx.tx.vout:
        if change_script is None and wallet.is_change(out.script_pubkey):
            change_script = out.script_pubkey
        else:
            recipients.append(Recipient(out.script_pubkey, out.value))
    if sign_it:
        wallet.require_unlocked()
    built = create_transaction(wallet, recipients, fee_rate, replaceable=replaceable,
                               change_script=change_script, preset=preset,
                               locktime=wtx.tx.locktime,
                               exclude_txids=wallet.with_descendants(txid))
    if built.fee < old_fee + INCREMENTAL_RELAY_FEE * ((built.tx.weight + 3) // 4) // 1000:
        raise WalletError(RPC_WALLET_ERROR, "Insufficient total fee for the replacement")
    result = {"origfee": old_fee, "fee": built.fee, "errors": []}
    if not sign_it:
        psbt = PSBT.from_tx(built.tx)
        update(wallet, psbt)
        result["psbt"] = psbt
        return result
    tx = sign_transaction(wallet, built.tx)
    broadcast(wallet, node, tx, replaces=txid)
    result["txid"] = tx.txid
    return result
