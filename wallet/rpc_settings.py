"""Wallet RPCs about the wallet's settings and make-up: settxfee (Core's wallet/rpc/spend.cpp),
setwalletflag, createwalletdescriptor, migratewallet (wallet.cpp) and walletdisplayaddress
(addresses.cpp), with Core's parameters, results and errors.

minibtc's wallets are descriptor wallets without external signers: migratewallet and
walletdisplayaddress answer what Core answers for such a wallet."""

from __future__ import annotations

from wallet.accounts import ADDRESS_TYPES, coin_type, normalized_public
from wallet.address import AddressError, decode_address
from wallet.amounts import parse_btc
from wallet.bip32 import BIP32Error, ExtKey
from wallet.descriptors import BIP32Key, DescriptorError, add_checksum, parse_descriptor
from wallet.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_MISC_ERROR,
    RPC_WALLET_ERROR,
    WalletError,
)
from wallet.rpc import AMOUNT, BOOL, OBJ, STR, Call, Param, check_options, method

RPC_METHOD_DEPRECATED = -32


def _fee_rate_text(sat_per_kvb: int) -> str:
    """CFeeRate::ToString: BTC/kvB with 8 decimals."""
    return f"{sat_per_kvb // 100_000_000}.{sat_per_kvb % 100_000_000:08d} BTC/kvB"


@method("settxfee", Param("amount", AMOUNT))
def settxfee(call: Call, amount):
    """Set the transaction fee rate in BTC/kvB for this wallet. Overrides the global
    -paytxfee command line parameter. Can be deactivated by passing 0 as the fee. In that
    case automatic fee selection will be used by default. (Deprecated, as in Core 30: only
    with -deprecatedrpc=settxfee.)"""
    options = call.manager.options
    if options is not None and "settxfee" not in options.arg_list("deprecatedrpc"):
        raise WalletError(RPC_METHOD_DEPRECATED, "settxfee is deprecated and will be fully "
                          "removed in v31.0.\nTo use settxfee, restart minibtcd with "
                          "-deprecatedrpc=settxfee.")
    w = call.w
    rate = parse_btc(amount)  # sat per 1000 vbytes
    if rate != 0:
        if rate < w.min_relay_fee:
            raise WalletError(RPC_INVALID_PARAMETER, "txfee cannot be less than min relay tx "
                              f"fee ({_fee_rate_text(w.min_relay_fee)})")
        if rate < w.min_tx_fee:
            raise WalletError(RPC_INVALID_PARAMETER, "txfee cannot be less than wallet min fee "
                              f"({_fee_rate_text(w.min_tx_fee)})")
        if rate > w.max_tx_fee:
            raise WalletError(RPC_INVALID_PARAMETER, "txfee cannot be more than wallet max tx "
                              f"fee ({_fee_rate_text(w.max_tx_fee)})")
    w.pay_tx_fee = rate
    return True


# Core's WALLET_FLAG_MAP; only avoid_reuse may change after creation (MUTABLE_WALLET_FLAGS)
WALLET_FLAGS = ("avoid_reuse", "blank", "key_origin_metadata", "last_hardened_xpub_cached",
                "disable_private_keys", "descriptor_wallet", "external_signer")
AVOID_REUSE_CAVEAT = ("You need to rescan the blockchain in order to correctly mark used "
                      "destinations in the past. Until this is done, some destinations may be "
                      "considered unused, even if the opposite is the case.")


@method("setwalletflag", Param("flag", STR), Param("value", BOOL, True), syncs=False)
def setwalletflag(call: Call, flag, value):
    """Change the state of the given wallet flag for a wallet."""
    w = call.w
    if flag not in WALLET_FLAGS:
        raise WalletError(RPC_INVALID_PARAMETER, f"Unknown wallet flag: {flag}")
    if flag != "avoid_reuse":
        raise WalletError(RPC_INVALID_PARAMETER, f"Wallet flag is immutable: {flag}")
    if w.avoid_reuse == value:
        raise WalletError(RPC_INVALID_PARAMETER, f"Wallet flag is already set to "
                          f"{'true' if value else 'false'}: {flag}")
    w.set_avoid_reuse(value)
    out: dict = {"flag_name": flag, "flag_state": value}
    if value:
        out["warnings"] = AVOID_REUSE_CAVEAT
    return out


# -- createwalletdescriptor ------------------------------------------------------------------


def _hd_keys(w, private: bool) -> dict[tuple[bytes, bytes], ExtKey]:
    """The extended keys written in the wallet's descriptors (active ones only, unless
    `private`: then every private one), by (public key, chain code)."""
    out: dict[tuple[bytes, bytes], ExtKey] = {}
    for acc in w.accounts.values():
        desc = acc.private if acc.private is not None else acc.desc
        if not private and not acc.active:
            continue
        todo = [desc]
        while todo:
            d = todo.pop()
            todo.extend(d.subs)
            for k in d.keys:
                if isinstance(k, BIP32Key) and (k.ext.is_private or not private):
                    out.setdefault((k.ext.pubkey, k.ext.chain_code), k.ext)
    return out


@method("createwalletdescriptor", Param("type", STR), Param("options", OBJ, None),
        syncs=False)
def createwalletdescriptor(call: Call, type_, options):
    """Creates the wallet's descriptor for the given address type. The address type must be
    one that the wallet does not already have a descriptor for."""
    w = call.w
    if type_ not in ADDRESS_TYPES:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, f"Unknown address type '{type_}'")
    options = options or {}
    check_options(options, {"internal": BOOL, "hdkey": STR})
    internal = options.get("internal")
    internals = [False, True] if internal is None else [internal]
    w.require_unlocked()
    hdkey = options.get("hdkey")
    if hdkey is None:
        active = _hd_keys(w, private=False)
        if len(active) != 1:
            raise WalletError(RPC_WALLET_ERROR, "Unable to determine which HD key to use from "
                              "active descriptors. Please specify with 'hdkey'")
        xpub = next(iter(active.values())).neuter()
    else:
        try:
            xpub = ExtKey.deserialize(hdkey, w.params).neuter()
        except BIP32Error:
            raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Unable to parse HD key. Please "
                              "provide a valid xpub") from None
    master = _hd_keys(w, private=True).get((xpub.pubkey, xpub.chain_code))
    if master is None:
        raise WalletError(RPC_WALLET_ERROR,
                          f"Private key for {xpub.serialize(w.params)} is not known")
    purpose, template = ADDRESS_TYPES[type_]
    coin = coin_type(w.params)
    known = {acc.descriptor for acc in w.accounts.values()}
    made = []
    now = int(w.clock())
    for internal in internals:
        text = template.format(f"{master.serialize(w.params)}/{purpose}h/{coin}h/0h/"
                               f"{int(internal)}/*")
        try:
            desc = parse_descriptor(add_checksum(text), w.params, require_checksum=True)
        except DescriptorError as err:  # (not expected: the forms above are valid)
            raise WalletError(RPC_WALLET_ERROR, str(err)) from None
        if normalized_public(desc) in known:
            continue
        acc = w.import_descriptor(desc, now, True, internal, None, None)
        made.append(acc.descriptor)
    if not made:
        raise WalletError(RPC_WALLET_ERROR, "Descriptor already exists")
    return {"descs": made}


# -- migratewallet ---------------------------------------------------------------------------


@method("migratewallet", Param("wallet_name", STR, None), Param("passphrase", STR, None),
        needs_wallet=False, syncs=False)
def migratewallet(call: Call, wallet_name, passphrase):
    """Migrate the wallet to a descriptor wallet. minibtc's wallets are all descriptor
    wallets: there is nothing to migrate (Core's answer for one)."""
    if call.wallet is not None:
        if wallet_name is not None and wallet_name != call.wallet.name:
            raise WalletError(RPC_INVALID_PARAMETER, "RPC endpoint wallet and wallet_name "
                              "parameter specify different wallets")
        wallet_name = call.wallet.name
    elif wallet_name is None:
        raise WalletError(RPC_INVALID_PARAMETER, "Either RPC endpoint wallet or wallet_name "
                          "parameter must be provided")
    manager = call.manager
    if wallet_name not in manager.names() and wallet_name not in manager.on_disk():
        path = manager.wallets_dir / wallet_name
        raise WalletError(RPC_WALLET_ERROR, "Wallet file verification failed. Failed to load "
                          f"database path '{path}'. Path does not exist.")
    raise WalletError(RPC_WALLET_ERROR, "Error: This wallet is already a descriptor wallet")


# -- walletdisplayaddress --------------------------------------------------------------------


@method("walletdisplayaddress", Param("address", STR), syncs=False)
def walletdisplayaddress(call: Call, address):
    """Display address on an external signer for verification. minibtc's wallets have no
    external signer descriptors: Core's answer for an address of none."""
    w = call.w
    try:
        decode_address(address, w.params)
    except AddressError:
        raise WalletError(RPC_INVALID_ADDRESS_OR_KEY, "Invalid address") from None
    raise WalletError(RPC_MISC_ERROR, "There is no ScriptPubKeyManager for this address")


