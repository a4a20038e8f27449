"""Wallet RPCs: creating, loading and listing wallets; encryption, backup,
the mnemonic and rescans (Core's wallet/rpc/wallet.cpp, encrypt.cpp, backup.cpp)."""

from __future__ import annotations

from pathlib import Path

from wallet.amounts import to_btc
from wallet.errors import (
    RPC_INVALID_PARAMETER,
    RPC_WALLET_ERROR,
    WalletError,
)
from wallet.rpc import (
    BOOL,
    NUM,
    STR,
    WALLET_VERSION,
    Call,
    Param,
    last_block,
    method,
)

# -- wallet management -----------------------------------------------------------------------


@method("createwallet", Param("wallet_name", STR), Param("disable_private_keys", BOOL, False),
        Param("blank", BOOL, False), Param("passphrase", STR, ""),
        Param("avoid_reuse", BOOL, False), Param("descriptors", BOOL, True),
        Param("load_on_startup", BOOL, None), Param("external_signer", BOOL, False),
        Param("mnemonic", STR, None), Param("mnemonic_passphrase", STR, ""),
        Param("birthday_height", NUM, None), needs_wallet=False, syncs=False)
def createwallet(call: Call, name, disable_private_keys, blank, passphrase, avoid_reuse,
                 descriptors, load_on_startup, external_signer, mnemonic, mnemonic_passphrase,
                 birthday_height):
    if not descriptors:
        raise WalletError(RPC_WALLET_ERROR, "Legacy (non-descriptor) wallets are not supported")
    if external_signer:
        raise WalletError(RPC_WALLET_ERROR, "External signers are not supported")
    if mnemonic is not None and (disable_private_keys or blank):
        raise WalletError(RPC_INVALID_PARAMETER, "A mnemonic needs a wallet with private keys")
    w = call.manager.create(name, disable_private_keys=disable_private_keys, blank=blank,
                            passphrase=passphrase or None, mnemonic=mnemonic,
                            mnemonic_passphrase=mnemonic_passphrase,
                            birthday_height=birthday_height, load_on_startup=load_on_startup)
    if avoid_reuse:
        w.set_avoid_reuse(True)
    return {"name": w.name}


@method("loadwallet", Param("filename", STR), Param("load_on_startup", BOOL, None),
        needs_wallet=False, syncs=False)
def loadwallet(call: Call, name, load_on_startup):
    w = call.manager.load(name, load_on_startup=load_on_startup)
    return {"name": w.name}


@method("unloadwallet", Param("wallet_name", STR, None), Param("load_on_startup", BOOL, None),
        needs_wallet=False, syncs=False)
def unloadwallet(call: Call, name, load_on_startup):
    if name is None:
        if call.wallet is None:
            raise WalletError(RPC_INVALID_PARAMETER, "Either the RPC endpoint wallet or the "
                              "wallet name parameter must be provided")
        name = call.wallet.name
    elif call.wallet is not None and call.wallet.name != name:
        raise WalletError(RPC_INVALID_PARAMETER, "RPC endpoint wallet and wallet_name "
                          "parameter specify different wallets")
    call.manager.unload(name, load_on_startup=load_on_startup)
    return {}


@method("listwallets", needs_wallet=False, syncs=False)
def listwallets(call: Call):
    return call.manager.names()


@method("listwalletdir", needs_wallet=False, syncs=False)
def listwalletdir(call: Call):
    return {"wallets": [{"name": n} for n in call.manager.on_disk()]}


@method("restorewallet", Param("wallet_name", STR), Param("backup_file", STR),
        Param("load_on_startup", BOOL, None), needs_wallet=False, syncs=False)
def restorewallet(call: Call, name, backup_file, load_on_startup):
    w = call.manager.restore_backup(name, Path(backup_file), load_on_startup=load_on_startup)
    return {"name": w.name}


@method("getwalletinfo", syncs=True)
def getwalletinfo(call: Call):
    w = call.w
    out: dict = {
        "walletname": w.name,
        "walletversion": WALLET_VERSION,
        "format": "sqlite",
        "txcount": len(w.txs),
        "keypoolsize": w.keypool_size(internal=False),
        "keypoolsize_hd_internal": w.keypool_size(internal=True),
    }
    if w.encrypted:
        out["unlocked_until"] = 0 if w.locked else w.unlocked_until_time
    out.update({
        "paytxfee": to_btc(w.pay_tx_fee),
        "private_keys_enabled": w.private_keys_enabled,
        "avoid_reuse": w.avoid_reuse,
        "scanning": {"duration": int(w.clock() - w.scan_started),
                     "progress": round(w.scan_progress, 8)} if w.rescanning else False,
        "descriptors": True,
        "external_signer": False,
        "blank": not w.accounts,
        "birthtime": int(w.db.get_meta("created", 0)),
        "lastprocessedblock": last_block(w),
    })
    return out



# -- encryption and backup -------------------------------------------------------------------


@method("encryptwallet", Param("passphrase", STR), syncs=False)
def encryptwallet(call: Call, passphrase):
    call.w.encrypt(passphrase)
    return ("wallet encrypted; the keys stay the same (your mnemonic backup remains valid), but "
            "make a new backup of the wallet file with backupwallet.")


@method("walletpassphrase", Param("passphrase", STR), Param("timeout", NUM), syncs=False)
def walletpassphrase(call: Call, passphrase, timeout):
    w = call.w
    w.unlock(passphrase, int(timeout))
    if not w.scanning:
        w.top_up_all()  # (Core tops the keypool up while it has the keys)
    return None


@method("walletlock", syncs=False)
def walletlock(call: Call):
    w = call.w
    if not w.encrypted:
        raise WalletError(-15, "Error: running with an unencrypted wallet, but walletlock was "
                          "called.")
    if w.scanning:
        raise WalletError(RPC_WALLET_ERROR, "Error: the wallet is currently being used to "
                          "rescan the blockchain for related transactions. Please call "
                          "`abortrescan` before locking the wallet.")
    w.lock()
    return None


@method("walletpassphrasechange", Param("oldpassphrase", STR), Param("newpassphrase", STR),
        syncs=False)
def walletpassphrasechange(call: Call, old, new):
    if call.w.scanning:
        raise WalletError(RPC_WALLET_ERROR, "Error: the wallet is currently being used to "
                          "rescan the blockchain for related transactions. Please call "
                          "`abortrescan` before changing the passphrase.")
    call.w.change_passphrase(old, new)
    return None


@method("backupwallet", Param("destination", STR), syncs=False)
def backupwallet(call: Call, destination):
    try:
        call.w.backup(Path(destination))
    except OSError as err:
        raise WalletError(RPC_WALLET_ERROR, f"Error: Wallet backup failed! ({err})") from None
    return None


@method("getmnemonic", syncs=False)
def getmnemonic(call: Call):
    """minibtc's own: the wallet's BIP39 words (and passphrase), to write down."""
    words, passphrase = call.w.mnemonic()
    return {"mnemonic": words, "passphrase": passphrase}


@method("rescanblockchain", Param("start_height", NUM, 0), Param("stop_height", NUM, None))
def rescanblockchain(call: Call, start_height, stop_height):
    if start_height < 0 or (stop_height is not None and stop_height < start_height):
        raise WalletError(RPC_INVALID_PARAMETER, "Invalid start_height or stop_height")
    return call.manager.rescan(call.w, int(start_height),
                               None if stop_height is None else int(stop_height))


@method("abortrescan", syncs=False)
def abortrescan(call: Call):
    """Core's abortrescan: asks a running rescan to stop (it stops between batches of
    blocks); False when none runs or one was already asked."""
    w = call.w
    if not w.rescanning or w.abort_rescan:
        return False
    w.abort_rescan = True
    return True
