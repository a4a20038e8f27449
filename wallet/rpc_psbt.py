"""Wallet RPCs: PSBTs (Core's walletcreatefundedpsbt and walletprocesspsbt), and the
node-level finalizepsbt, combinepsbt and decodepsbt for the wallet's own server (a node
mounting the wallet answers those itself: node/rpc/psbt.py).

The wallet is a PSBT updater and signer as Core's FillPSBT: it adds the previous
transactions it has, and for each input the keys, scripts and origins of the descriptor that
owns the output it spends (or of the keys the input's derivation paths name), signing when
asked and unlocked; outputs get their scripts and origins, so that change can be told."""

from __future__ import annotations

from consensus.hashes import hash160
from wallet.amounts import parse_btc, to_btc
from wallet.errors import (
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_PARAMETER,
    RPC_TYPE_ERROR,
    WalletError,
)
from wallet.psbt import (
    PSBT,
    SIGHASH_NAMES,
    Provider,
    PSBTError,
    SighashMismatch,
    TxData,
    finalize_and_extract,
    input_signed_and_verified,
    remove_unnecessary_transactions,
    sign_psbt_input,
    update_psbt_output,
)
from wallet.rpc import (
    ANY,
    ARR,
    BOOL,
    METHODS,
    NUM,
    OBJ,
    STR,
    Call,
    Method,
    Param,
    check_options,
    fee_rate_of,
    json_type,
    method,
)
from wallet.rpc_send import FUND_OPTIONS, fund
from wallet.wallet import Wallet


def _psbt(text: str) -> PSBT:
    try:
        return PSBT.from_base64(text)
    except PSBTError as err:
        raise WalletError(RPC_DESERIALIZATION_ERROR, str(err)) from None


def parse_sighash(value) -> int | None:  # noqa: ANN001
    """Core's ParseSighashString (None when not given)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise WalletError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not of "
                          "expected type string")
    if value not in SIGHASH_NAMES:
        raise WalletError(RPC_INVALID_PARAMETER, f"'{value}' is not a valid sighash parameter.")
    return SIGHASH_NAMES[value]


def _psbt_version(value) -> int:  # noqa: ANN001
    v = 2 if value is None else value
    if isinstance(v, bool) or not isinstance(v, int) or v not in (0, 2):
        raise WalletError(RPC_INVALID_PARAMETER, "The PSBT version can only be 2 or 0")
    return v


# -- the wallet as updater and signer --------------------------------------------------------


def _pubkey_owners(w: Wallet) -> dict[bytes, tuple]:
    """Every derived key of the wallet (full and x-only) -> (account, index)."""
    out: dict[bytes, tuple] = {}
    for acc in w.accounts.values():
        for index in range(acc.range_end if acc.ranged else 1):
            for key in acc.expansion(index).keys:
                out.setdefault(key.pubkey, (acc, index))
                out.setdefault(key.pubkey[-32:] if len(key.pubkey) == 32 else key.pubkey[1:33],
                               (acc, index))
    return out


def _add_account(prov: Provider, acc, index: int, sign: bool) -> None:  # noqa: ANN001
    prov.add_descriptor(acc.desc, index)
    if sign and acc.private is not None:
        prov.add_descriptor(acc.private, index, acc.private)


def wallet_provider(w: Wallet, script: bytes, inp=None, sign: bool = False,  # noqa: ANN001
                    owners: dict | None = None) -> tuple[Provider, dict | None]:
    """The keys and scripts for an output script (Core's GetSigningProvider); for a script
    the wallet does not have, those of the keys an input names in its derivation paths."""
    prov = Provider()
    owner = w.owner(script)
    if owner is not None:
        _add_account(prov, owner[0], owner[1], sign)
        return prov, owners
    if inp is None:
        return prov, owners
    wanted = list(inp.bip32_derivs) + list(inp.tap_bip32_derivs)
    if len(script) == 34 and script[0] == 0x51 and script[1] == 32:
        wanted.append(script[2:])
    if not wanted:
        return prov, owners
    if owners is None:
        owners = _pubkey_owners(w)
    for pk in wanted:
        hit = owners.get(pk)
        if hit is not None:
            _add_account(prov, hit[0], hit[1], sign)
    return prov, owners


def fill_psbt(w: Wallet, psbt: PSBT, sighash: int | None, sign: bool, bip32derivs: bool,
              finalize: bool = True) -> bool:
    """Core's CWallet::FillPSBT; True when every input is signed (and verifies)."""
    for inp in psbt.inputs:
        if inp.finalized or inp.non_witness_utxo is not None:
            continue
        prev = w.txs.get(inp.prev_txid)
        if prev is not None:
            inp.non_witness_utxo = prev.tx
    if psbt.unsigned_tx() is None:
        raise WalletError(RPC_DESERIALIZATION_ERROR, "PSBT is not valid: its inputs require "
                          "conflicting locktimes")
    txdata = TxData(psbt)
    owners = None
    for i, inp in enumerate(psbt.inputs):
        if inp.finalized:
            continue
        if inp.witness_utxo is not None:
            script = inp.witness_utxo.script_pubkey
        elif inp.non_witness_utxo is not None:
            if inp.prev_out >= len(inp.non_witness_utxo.vout):
                raise WalletError(RPC_DESERIALIZATION_ERROR, "Input not found or already "
                                  "spent")
            script = inp.non_witness_utxo.vout[inp.prev_out].script_pubkey
        else:
            continue
        prov, owners = wallet_provider(w, script, inp, sign, owners)
        prov.hide_secret = not sign
        prov.hide_origin = not bip32derivs
        try:
            sign_psbt_input(prov, psbt, i, txdata, sighash, finalize)
        except SighashMismatch as err:
            raise WalletError(RPC_DESERIALIZATION_ERROR, str(err)) from None
    for i, out in enumerate(psbt.outputs):
        if w.owner(out.script) is None:
            continue
        prov, _ = wallet_provider(w, out.script)
        prov.hide_secret = True
        prov.hide_origin = not bip32derivs
        update_psbt_output(prov, psbt, i)
    remove_unnecessary_transactions(psbt)
    txdata = TxData(psbt)
    return all(input_signed_and_verified(psbt, i, txdata) for i in range(len(psbt.inputs)))


def _locked_inputs(w: Wallet, psbt: PSBT) -> None:
    """Signing needs the keys: a locked wallet with inputs of its own refuses, as Core's
    EnsureWalletIsUnlocked."""
    w.require_unlocked()


@method("walletcreatefundedpsbt", Param("inputs", ARR, None), Param("outputs", ANY),
        Param("locktime", NUM, None), Param("options", OBJ, None),
        Param("bip32derivs", BOOL, True), Param("psbt_version", NUM, None))
def walletcreatefundedpsbt(call: Call, inputs, outputs, locktime, options, bip32derivs,
                           psbt_version):
    w = call.w
    o = options or {}
    version = _psbt_version(psbt_version)
    if "input_weights" in o:  # (Core's SetOptionsInputWeights)
        raise WalletError(RPC_INVALID_PARAMETER, "Input weights should be specified in inputs "
                          "rather than in options.")
    check_options(o, FUND_OPTIONS)
    if o.get("feeRate") is not None:
        if o.get("fee_rate") is not None:
            raise WalletError(RPC_INVALID_PARAMETER, "Cannot specify both fee_rate (sat/vB) "
                              "and feeRate (BTC/kvB)")
        if o.get("estimate_mode") is not None:
            raise WalletError(RPC_INVALID_PARAMETER, "Cannot specify both estimate_mode and "
                              "feeRate")
        if o.get("conf_target") is not None:
            raise WalletError(RPC_INVALID_PARAMETER, "Cannot specify both conf_target and "
                              "feeRate. Please provide either a confirmation target in blocks "
                              "for automatic fee estimation, or an explicit fee rate.")
    change_address = o.get("changeAddress", o.get("change_address"))
    if change_address is not None and o.get("change_type") is not None:
        raise WalletError(RPC_INVALID_PARAMETER, "Cannot specify both change address and "
                          "address type options")
    if o.get("feeRate") is not None:
        rate = parse_btc(o["feeRate"])
    else:
        rate = fee_rate_of(call, o.get("fee_rate"), o.get("conf_target"),
                           o.get("estimate_mode"))
    # what only the newer fund() takes is passed when asked for
    extra = {k: o[k] for k in ("include_unsafe", "minconf", "maxconf", "solving_data",
                               "input_weights", "max_tx_weight")
             if o.get(k) is not None}
    position = o.get("changePosition", o.get("change_position"))
    if position is not None:
        extra["change_position"] = position
    built = fund(w, inputs, outputs, rate, locktime=0 if locktime is None else locktime,
                 node=call.node, change_address=change_address, change_type=o.get("change_type"),
                 subtract=o.get("subtractFeeFromOutputs", o.get("subtract_fee_from_outputs",
                                                                 [])),
                 lock=bool(o.get("lockUnspents", o.get("lock_unspents"))),
                 add_inputs=o.get("add_inputs"),
                 replaceable=bool(o.get("replaceable", True)),
                 override_min_fee=o.get("feeRate") is not None or o.get("fee_rate") is not None,
                 **extra)
    psbt = PSBT.from_tx(built.tx, version)
    fill_psbt(w, psbt, None, False, bip32derivs is not False)
    return {"psbt": psbt.to_base64(), "fee": to_btc(built.fee), "changepos": built.change_pos}


@method("walletprocesspsbt", Param("psbt", STR), Param("sign", BOOL, True),
        Param("sighashtype", STR, None), Param("bip32derivs", BOOL, True),
        Param("finalize", BOOL, True))
def walletprocesspsbt(call: Call, text, do_sign, sighashtype, bip32derivs, finalize):
    w = call.w
    psbt = _psbt(text)
    ht = parse_sighash(sighashtype)
    sign = do_sign is not False
    if sign:
        _locked_inputs(w, psbt)
    complete = fill_psbt(w, psbt, ht, sign, bip32derivs is not False, finalize is not False)
    out: dict = {"psbt": psbt.to_base64(), "complete": complete}
    if complete:
        tx = finalize_and_extract(PSBT.parse(psbt.serialize()))
        if tx is not None:
            out["hex"] = tx.serialize().hex()
    return out


class _OptionsByName(Method):
    """Core's OBJ_NAMED_PARAMS: the keys of "options" may also be given as named
    parameters of their own."""

    def bind(self, params):  # noqa: ANN001, ANN201
        if isinstance(params, dict):
            known = {p.name for p in self.params} | {"args"}
            loose = {k: v for k, v in params.items() if k not in known}
            if loose:
                params = {k: v for k, v in params.items() if k in known}
                if params.get("options") is not None:
                    raise WalletError(RPC_INVALID_PARAMETER, f"Parameter options conflicts "
                                      f"with parameter {sorted(loose)[0]}")
                params["options"] = loose
        return super().bind(params)


_m = METHODS["walletcreatefundedpsbt"]
METHODS["walletcreatefundedpsbt"] = _OptionsByName(_m.name, _m.func, _m.params,
                                                   _m.needs_wallet, _m.syncs)


# -- node-level methods, for the wallet's own server ----------------------------------------


@method("finalizepsbt", Param("psbt", STR), Param("extract", BOOL, True), needs_wallet=False,
        syncs=False)
def finalizepsbt(call: Call, text, extract):
    psbt = _psbt(text)
    tx = finalize_and_extract(psbt)
    out: dict = {}
    if tx is not None and extract is not False:
        out["hex"] = tx.serialize().hex()
    else:
        out["psbt"] = psbt.to_base64()
    out["complete"] = tx is not None
    return out


@method("combinepsbt", Param("txs", ARR), needs_wallet=False, syncs=False)
def combinepsbt(call: Call, txs):
    if not txs:
        raise WalletError(RPC_INVALID_PARAMETER, "Parameter 'txs' cannot be empty")
    psbts = [_psbt(t) for t in txs]
    merged = psbts[0]
    for p in psbts[1:]:
        try:
            merged.combine(p)
        except PSBTError as err:
            raise WalletError(RPC_INVALID_PARAMETER, str(err)) from None
    return merged.to_base64()


@method("decodepsbt", Param("psbt", STR), needs_wallet=False, syncs=False)
def decodepsbt(call: Call, text):
    _psbt(text)  # the wallet's own errors for a PSBT that does not parse
    return call.node.call("decodepsbt", text)


__all__ = ["fill_psbt", "hash160", "parse_sighash", "wallet_provider"]
