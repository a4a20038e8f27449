"""The wallet's descriptors (Core's DescriptorScriptPubKeyMan): HD accounts on BIP44/49/84/86
paths with a receive and a change chain each, and imported descriptors.

Scripts come from wallet.descriptors (the one place that turns descriptors into scripts and
keys). An account keeps `range_end` scripts derived ahead of the last one used or handed out
(the look-ahead window), so that coins sent to an address not shown yet are still found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.params import ChainParams
from wallet.bip32 import HARDENED, ExtKey
from wallet.descriptors import (
    Descriptor,
    Expansion,
    PKHDescriptor,
    SHDescriptor,
    TRDescriptor,
    WPKHDescriptor,
    parse_descriptor,
)
from wallet.keys import pubkey_from_secret

DEFAULT_LOOKAHEAD = 100

# address type (Core's -addresstype names) -> (BIP purpose, descriptor template)
ADDRESS_TYPES: dict[str, tuple[int, str]] = {
    "legacy": (44, "pkh({})"),
    "p2sh-segwit": (49, "sh(wpkh({}))"),
    "bech32": (84, "wpkh({})"),
    "bech32m": (86, "tr({})"),
}


def coin_type(params: ChainParams) -> int:
    """BIP44 coin type: 0 on main, 1 on every test chain (regtest included), as Core."""
    return 0 if params.name == "main" else 1


def hd_account_descriptors(master: ExtKey, params: ChainParams, account: int = 0
                           ) -> list[tuple[str, bool, str, str]]:
    """(address type, internal, public descriptor, private descriptor) for each address type
    and chain: e.g. wpkh([fp/84h/1h/0h]tpub.../0/*) and its tprv twin."""
    out = []
    fp = master.fingerprint.hex()
    coin = coin_type(params)
    for kind, (purpose, template) in ADDRESS_TYPES.items():
        acct = master.derive_path([purpose | HARDENED, coin | HARDENED, account | HARDENED])
        origin = f"[{fp}/{purpose}h/{coin}h/{account}h]"
        for internal in (False, True):
            tail = f"/{int(internal)}/*"
            pub = template.format(origin + acct.neuter().serialize(params) + tail)
            prv = template.format(origin + acct.serialize(params) + tail)
            out.append((kind, internal, parse_descriptor(pub, params).to_string(),
                        parse_descriptor(prv, params).to_string(private=True)))
    return out


def address_type_of(desc: Descriptor) -> str | None:
    """Which -addresstype a descriptor gives (None for others, such as multisig)."""
    if isinstance(desc, PKHDescriptor):
        return "legacy"
    if isinstance(desc, SHDescriptor) and isinstance(desc.subs[0], WPKHDescriptor):
        return "p2sh-segwit"
    if isinstance(desc, WPKHDescriptor):
        return "bech32"
    if isinstance(desc, TRDescriptor) and not desc.subs:
        return "bech32m"
    return None


@dataclass
class Account:
    """One descriptor of the wallet, as stored in its `descriptors` table."""

    id: int
    descriptor: str  # public form, with checksum
    desc: Descriptor
    address_type: str | None
    internal: bool
    active: bool
    next_index: int
    range_end: int  # scripts 0 .. range_end-1 are derived and watched
    created: int
    secret: bytes | None = None  # the private descriptor, sealed when the wallet is encrypted
    private: Descriptor | None = field(default=None, repr=False)  # parsed while unlocked
    expansions: dict[int, Expansion] = field(default_factory=dict, repr=False)

    @property
    def ranged(self) -> bool:
        return self.desc.is_range()

    def expansion(self, index: int) -> Expansion:
        e = self.expansions.get(index)
        if e is None:
            e = self.expansions[index] = self.desc.expand_full(index if self.ranged else 0)
        return e

    def secret_for(self, pubkey: bytes, index: int) -> bytes | None:
        """The private key of one of this descriptor's keys at index (None when locked or
        watch-only)."""
        if self.private is None:
            return None
        pos = index if self.ranged else 0
        keys = self.private.keys + [k for s in _all_subs(self.private) for k in s.keys]
        if len(keys) == 1:  # a single-key descriptor: its one key is the one asked for
            return keys[0].derive_secret(pos)
        for k in keys:
            secret = k.derive_secret(pos)
            if secret is not None and pubkey_from_secret(secret, len(pubkey) == 33) == pubkey:
                return secret
        return None


def _all_subs(desc: Descriptor) -> list[Descriptor]:
    out = []
    for s in desc.subs:
        out.append(s)
        out.extend(_all_subs(s))
    return out


def load_private(account: Account, text: str, params: ChainParams) -> None:
    account.private = parse_descriptor(text, params)
