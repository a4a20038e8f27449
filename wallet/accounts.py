"""The wallet's descriptors (Core's DescriptorScriptPubKeyMan): HD accounts on BIP44/49/84/86
paths with a receive and a change chain each, and imported descriptors.

Scripts come from wallet.descriptors (the one place that turns descriptors into scripts and
keys). An account keeps `range_end` scripts derived ahead of the last one used or handed out
(the look-ahead window), so that coins sent to an address not shown yet are still found.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from consensus.params import ChainParams
from wallet.bip32 import HARDENED, ExtKey
from wallet.descriptors import (
    BIP32Key,
    Derive,
    DerivedKey,
    Descriptor,
    DescriptorError,
    Expansion,
    KeyOrigin,
    PKHDescriptor,
    RawTRDescriptor,
    SHDescriptor,
    TRDescriptor,
    WPKHDescriptor,
    WSHDescriptor,
    parse_descriptor,
)
from wallet.keys import pubkey_from_secret

DEFAULT_LOOKAHEAD = 1000  # Core's -keypool default: scripts kept derived past the last used

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
    and chain: e.g. wpkh([fp/84h/1h/0h]tpub.../0/*) and wpkh(tprvMASTER/84h/1h/0h/0/*)."""
    out = []
    fp = master.fingerprint.hex()
    coin = coin_type(params)
    for kind, (purpose, template) in ADDRESS_TYPES.items():
        acct = master.derive_path([purpose | HARDENED, coin | HARDENED, account | HARDENED])
        origin = f"[{fp}/{purpose}h/{coin}h/{account}h]"
        for internal in (False, True):
            tail = f"/{int(internal)}/*"
            pub = template.format(origin + acct.neuter().serialize(params) + tail)
            # the private form as Core's: the master key with the full path (gethdkeys)
            prv = template.format(master.serialize(params) + f"/{purpose}h/{coin}h/{account}h"
                                  + tail)
            out.append((kind, internal, parse_descriptor(pub, params).to_string(),
                        parse_descriptor(prv, params).to_string(private=True)))
    return out


def address_type_of(desc: Descriptor) -> str | None:
    """Which -addresstype a descriptor gives (Core's GetOutputType): pkh and sh of a script
    legacy, sh of a segwit program p2sh-segwit, wpkh and wsh bech32, tr bech32m; None for
    combo, pk, bare multisig and raw scripts."""
    if isinstance(desc, PKHDescriptor):
        return "legacy"
    if isinstance(desc, SHDescriptor):
        inner = desc.subs[0] if desc.subs else None
        return "p2sh-segwit" if isinstance(inner, (WPKHDescriptor, WSHDescriptor)) \
            else "legacy"
    if isinstance(desc, (WPKHDescriptor, WSHDescriptor)):
        return "bech32"
    if isinstance(desc, (TRDescriptor, RawTRDescriptor)):
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
    secret: bytes | None = None
    range_start: int = 0  # the private descriptor, sealed when the wallet is encrypted
    private: Descriptor | None = field(default=None, repr=False)  # parsed while unlocked
    expansions: dict[int, Expansion] = field(default_factory=dict, repr=False)
    # indexes derived and not yet written to the cache table (a wallet opens without
    # deriving again; one with hardened steps knows its scripts while locked)
    unsaved: list[int] = field(default_factory=list, repr=False)

    @property
    def ranged(self) -> bool:
        return self.desc.is_range()

    def expansion(self, index: int) -> Expansion:
        """The scripts and keys at index: from the public descriptor, or (hardened steps)
        from the private one while it is loaded. Raises DescriptorError when neither can."""
        e = self.expansions.get(index)
        if e is None:
            pos = index if self.ranged else 0
            try:
                e = self.desc.expand_full(pos)
            except DescriptorError:
                if self.private is None:
                    raise
                e = self.private.expand_full(pos)
            self.expansions[index] = e
            self.unsaved.append(index)
        return e

    def can_derive(self, index: int) -> bool:
        if index in self.expansions:
            return True
        try:
            self.expansion(index)
        except DescriptorError:
            return False
        return True

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


def expansion_to_json(e: Expansion) -> str:
    return json.dumps({"s": [x.hex() for x in e.scripts],
                       "k": [[k.pubkey.hex(), k.fingerprint.hex(), list(k.path)] for k in e.keys],
                       "u": {k.hex(): v.hex() for k, v in e.subscripts.items()}})


def expansion_from_json(text: str) -> Expansion:
    d = json.loads(text)
    return Expansion([bytes.fromhex(x) for x in d["s"]],
                     [DerivedKey(bytes.fromhex(p), bytes.fromhex(f), tuple(path))
                      for p, f, path in d["k"]],
                     {bytes.fromhex(k): bytes.fromhex(v) for k, v in d["u"].items()})


def normalized_public(desc: Descriptor) -> str:
    """The public form of desc as Core's listdescriptors shows it (ToNormalizedString): an
    extended key with hardened steps in its fixed path becomes the public key at the last
    hardened step, with that path moved into its origin, so it derives without the
    private key; hardened steps print as "h". A hardened wildcard (/*h) stays as it is."""
    d = copy.deepcopy(desc)
    todo = [d]
    while todo:
        cur = todo.pop()
        todo.extend(cur.subs)
        # musig() participants are normalized as any key (Core's MuSigPubkeyProvider)
        lists = [cur.keys] + [k.participants for k in cur.keys if hasattr(k, "participants")]
        for keys, i, key in [(ks, i, k) for ks in lists for i, k in enumerate(ks)]:
            key.apostrophe = False
            if not isinstance(key, BIP32Key) or key.derive_type is Derive.HARDENED:
                continue
            last = max((j for j, step in enumerate(key.path) if step & HARDENED), default=-1)
            if last < 0 or not key.ext.is_private:
                continue
            fixed, rest = key.path[:last + 1], key.path[last + 1:]
            parent = key.ext.derive_path(fixed).neuter()
            if key.origin is not None:
                origin = KeyOrigin(key.origin.fingerprint, key.origin.path + fixed)
            else:
                origin = KeyOrigin(key.ext.fingerprint, fixed)
            new = BIP32Key(parent, rest, key.derive_type, key.params)
            new.origin = origin
            keys[i] = new
    return d.to_string()
