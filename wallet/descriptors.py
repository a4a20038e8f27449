"""Output script descriptors (BIP380-386) with Bitcoin Core's parsing rules and messages.

Supported: pk, pkh, wpkh, sh, wsh, multi, sortedmulti, combo, addr, raw, tr (with script trees
of pk, multi_a and sortedmulti_a leaves) and rawtr, and miniscript (wallet/miniscript.py) inside
wsh() and as tr() leaves, and unused(KEY). Keys: hex (compressed, uncompressed, and
x-only inside tr), WIF, xpub/xprv with /paths and /* or /*' (/*h) ranges, each optionally with
[fingerprint/path] origin info; multipath steps (<a;b>) through parse_descriptors; musig()
aggregates inside tr() and rawtr() (BIP390, wallet/musig.py), watch-only: the aggregate has no
private key, so a musig() key is never signed for here.

The parser mirrors Core's ParseScript/ParsePubkey (src/script/descriptor.cpp) so that the same
inputs fail with the same messages (getdescriptorinfo, deriveaddresses and scantxoutset pass
them through). `Descriptor.to_string()` is Core's Descriptor::ToString(): private keys replaced
by public ones, hardened markers kept as written, and the checksum appended.

`infer_descriptor` is Core's InferDescriptor: what a script is, named with the keys, origins,
scripts and taproot trees a `SigningProvider` holds; `ScanObject` expands a scantxoutset scan
object into its scripts and such a provider, so that a match reports what Core reports.
Range errors (`DescriptorRangeError`) are the ones Core answers with RPC_INVALID_PARAMETER.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from consensus.hashes import hash160, ripemd160, sha256
from consensus.params import ChainParams
from consensus.script.opcodes import (
    OP_CHECKSIG,
    OP_CHECKSIGADD,
    OP_NUMEQUAL,
)
from consensus.script.script import (
    MAX_PUBKEYS_PER_MULTISIG,
    MAX_SCRIPT_ELEMENT_SIZE,
    ScriptParseError,
    get_op,
    push_data,
    push_int,
)
from consensus.script.sigcheck import pubkey_valid_size
from consensus.script.standard import (
    MULTISIG,
    PUBKEY,
    PUBKEYHASH,
    SCRIPTHASH,
    WITNESS_V0_KEYHASH,
    WITNESS_V0_SCRIPTHASH,
    WITNESS_V1_TAPROOT,
    multisig_script,
    p2pk_script,
    p2pkh_script,
    p2sh_script,
    p2tr_script,
    p2wpkh_script,
    p2wsh_script,
    script_number,
    solver,
)
from consensus.script.taproot import (
    TAPROOT_CONTROL_BASE_SIZE,
    TAPROOT_CONTROL_MAX_NODE_COUNT,
    TAPROOT_CONTROL_NODE_SIZE,
    TAPROOT_LEAF_TAPSCRIPT,
    tapbranch_hash,
    tapleaf_hash,
)
from wallet.address import (
    AddressError,
    WIFError,
    decode_address,
    decode_wif,
    encode_destination,
    encode_wif,
    script_to_address,
    script_to_destination,
)
from wallet.bech32 import CHARSET
from wallet.bip32 import HARDENED, BIP32Error, ExtKey, format_path, parse_path_element
from wallet.keys import (
    is_fully_valid_pubkey,
    is_hybrid,
    is_valid_xonly,
    pubkey_from_secret,
    taproot_merkle_root,
    taproot_output_key,
)
from wallet.miniscript import KeyCtx, MiniscriptParseError, MsContext, from_script
from wallet.miniscript import Node as MsNode
from wallet.miniscript import parse as ms_parse
from wallet.musig import MuSigError, aggregate_sorted, synthetic_xpub

MAX_PUBKEYS_PER_MULTI_A = 999
MAX_RANGE_SIZE = 1_000_000  # Core's limit on a derivation range


class DescriptorError(ValueError):
    """A descriptor that does not parse, or cannot be expanded; the message is Core's."""


class DescriptorRangeError(DescriptorError):
    """A bad derivation range, or a range given to (or missing from) a descriptor that does not
    take (or needs) one. Core reports these with RPC_INVALID_PARAMETER (-8), where the other
    descriptor errors are RPC_INVALID_ADDRESS_OR_KEY (-5)."""


# --- checksum (BIP380) --------------------------------------------------------------------------

_INPUT_CHARSET = (
    "0123456789()[],'/*abcdefgh@:$%{}"
    "IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~"
    'ijklmnopqrstuvwxyzABCDEFGH`#"\\ '
)
_INPUT_INDEX = {c: i for i, c in enumerate(_INPUT_CHARSET)}
_CHECKSUM_CHARSET = CHARSET  # the checksum characters are bech32's
_GENERATOR = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)


# XOR of the generators selected by each 5-bit value of the top bits: one lookup per step.
_GEN_TABLE = tuple(
    _GENERATOR[0] * (v & 1) ^ _GENERATOR[1] * (v >> 1 & 1) ^ _GENERATOR[2] * (v >> 2 & 1)
    ^ _GENERATOR[3] * (v >> 3 & 1) ^ _GENERATOR[4] * (v >> 4 & 1)
    for v in range(32)
)


def _polymod(c: int, val: int) -> int:
    return ((c & 0x7FFFFFFFF) << 5) ^ val ^ _GEN_TABLE[c >> 35]


def descriptor_checksum(desc: str) -> str:
    """The 8-character checksum of a descriptor (without '#'). DescriptorError on bad chars."""
    c = 1
    cls = clscount = 0
    table = _GEN_TABLE
    index = _INPUT_INDEX
    for ch in desc:
        pos = index.get(ch)
        if pos is None:
            raise DescriptorError("Invalid characters in payload")
        # One symbol per character for its place in its group of 32, and one per three
        # characters for their groups, so a case error counts as one symbol error.
        c = ((c & 0x7FFFFFFFF) << 5) ^ (pos & 31) ^ table[c >> 35]
        cls = cls * 3 + (pos >> 5)
        clscount += 1
        if clscount == 3:
            c = ((c & 0x7FFFFFFFF) << 5) ^ cls ^ table[c >> 35]
            cls = clscount = 0
    if clscount:
        c = _polymod(c, cls)
    for _ in range(8):
        c = _polymod(c, 0)
    c ^= 1
    return "".join(_CHECKSUM_CHARSET[(c >> (5 * (7 - j))) & 31] for j in range(8))


def add_checksum(desc: str) -> str:
    return desc + "#" + descriptor_checksum(desc)


def split_checksum(desc: str, require_checksum: bool = False) -> tuple[str, str]:
    """Core's CheckChecksum: verify an optional '#checksum'; return (payload, checksum)."""
    parts = desc.split("#")
    if len(parts) > 2:
        raise DescriptorError("Multiple '#' symbols")
    if len(parts) == 1 and require_checksum:
        raise DescriptorError("Missing checksum")
    if len(parts) == 2 and len(parts[1]) != 8:
        raise DescriptorError(
            f"Expected 8 character checksum, not {len(parts[1])} characters"
        )
    checksum = descriptor_checksum(parts[0])
    if len(parts) == 2 and parts[1] != checksum:
        raise DescriptorError(
            f"Provided checksum '{parts[1]}' does not match computed checksum '{checksum}'"
        )
    return parts[0], checksum


def get_descriptor_checksum(desc: str) -> str:
    """Core's GetDescriptorChecksum: the checksum of the payload, "" if that fails."""
    try:
        return split_checksum(desc)[1]
    except DescriptorError:
        return ""


# --- script building ----------------------------------------------------------------------------


def _multi_a_script(k: int, xkeys: Sequence[bytes]) -> bytes:
    """<key1> CHECKSIG <key2> CHECKSIGADD ... <k> NUMEQUAL (BIP387's multi_a)."""
    out = push_data(xkeys[0]) + bytes([OP_CHECKSIG])
    for x in xkeys[1:]:
        out += push_data(x) + bytes([OP_CHECKSIGADD])
    return out + push_int(k) + bytes([OP_NUMEQUAL])


# --- key expressions ----------------------------------------------------------------------------


class Ctx(Enum):
    """Where a script or key appears (Core's ParseScriptContext)."""

    TOP = "top"
    P2SH = "sh"
    P2WPKH = "wpkh"
    P2WSH = "wsh"
    P2TR = "tr"
    MUSIG = "musig"  # a participant of a musig() expression


class Derive(Enum):
    NON_RANGED = 0
    UNHARDENED = 1
    HARDENED = 2


@dataclass(frozen=True)
class KeyOrigin:
    fingerprint: bytes
    path: tuple[int, ...]

    def to_string(self, apostrophe: bool) -> str:
        return self.fingerprint.hex() + format_path(self.path, apostrophe)


@dataclass(frozen=True)
class DerivedKey:
    """A public key produced by a key expression, with where it comes from (for PSBTs)."""

    pubkey: bytes
    fingerprint: bytes
    path: tuple[int, ...]


class KeyExpr:
    """A KEY expression: a constant key or an extended key with a path, plus origin info."""

    origin: KeyOrigin | None = None
    apostrophe: bool = False

    def is_range(self) -> bool:
        raise NotImplementedError

    def has_private_key(self) -> bool:
        raise NotImplementedError

    def size(self) -> int:
        """Serialized size of the produced keys (33 or 65), for script size limits."""
        raise NotImplementedError

    def derive(self, pos: int) -> DerivedKey:
        raise NotImplementedError

    def derive_secret(self, pos: int) -> bytes | None:
        """The private key of derive(pos), or None for a key given in public form."""
        raise NotImplementedError

    def _body(self, private: bool) -> str:
        raise NotImplementedError

    def to_string(self, private: bool = False) -> str:
        body = self._body(private)
        if self.origin is None:
            return body
        return "[" + self.origin.to_string(self.apostrophe) + "]" + body


class ConstKey(KeyExpr):
    """A hex public key or a WIF private key. xonly: written (and shown) as 32 bytes."""

    def __init__(
        self,
        pubkey: bytes,
        params: ChainParams,
        xonly: bool = False,
        secret: bytes | None = None,
    ) -> None:
        self.pubkey = pubkey
        self.params = params
        self.xonly = xonly
        self.secret = secret

    def is_range(self) -> bool:
        return False

    def has_private_key(self) -> bool:
        return self.secret is not None

    def size(self) -> int:
        return len(self.pubkey)

    def derive(self, pos: int) -> DerivedKey:
        if self.origin is not None:
            return DerivedKey(self.pubkey, self.origin.fingerprint, self.origin.path)
        return DerivedKey(self.pubkey, hash160(self.pubkey)[:4], ())

    def derive_secret(self, pos: int) -> bytes | None:
        return self.secret

    def _body(self, private: bool) -> str:
        if private and self.secret is not None:
            return encode_wif(self.secret, self.params, compressed=len(self.pubkey) == 33)
        return self.pubkey[1:].hex() if self.xonly else self.pubkey.hex()


class BIP32Key(KeyExpr):
    """xpub/xprv + path, optionally ranged (/* or /*' for hardened children)."""

    def __init__(
        self, ext: ExtKey, path: Sequence[int], derive: Derive, params: ChainParams
    ) -> None:
        self.ext = ext
        self.path = tuple(path)
        self.derive_type = derive
        self.params = params
        self._parent: ExtKey | None = None

    def is_range(self) -> bool:
        return self.derive_type is not Derive.NON_RANGED

    def has_private_key(self) -> bool:
        return self.ext.is_private

    def size(self) -> int:
        return 33

    def is_hardened(self) -> bool:
        return self.derive_type is Derive.HARDENED or any(i & HARDENED for i in self.path)

    def _fixed(self) -> ExtKey:
        """The key at the end of the fixed path (the parent of ranged children), cached."""
        if self._parent is None:
            if self.is_hardened() and not self.ext.is_private:
                raise DescriptorError("Cannot derive script without private keys")
            self._parent = self.ext.derive_path(self.path)
        return self._parent

    def child_path(self, pos: int) -> tuple[int, ...]:
        if self.derive_type is Derive.UNHARDENED:
            return self.path + (pos,)
        if self.derive_type is Derive.HARDENED:
            return self.path + (pos | HARDENED,)
        return self.path

    def derive(self, pos: int) -> DerivedKey:
        if self.is_range() and not 0 <= pos < HARDENED:
            raise DescriptorError(f"Derivation index {pos} out of range")
        key = self._fixed()
        try:
            if self.derive_type is Derive.UNHARDENED:
                key = key.derive(pos)
            elif self.derive_type is Derive.HARDENED:
                key = key.derive(pos | HARDENED)
        except BIP32Error as e:
            raise DescriptorError(f"Cannot derive key at index {pos}: {e}") from None
        path = self.child_path(pos)
        if self.origin is not None:
            return DerivedKey(key.pubkey, self.origin.fingerprint, self.origin.path + path)
        return DerivedKey(key.pubkey, self.ext.fingerprint, path)

    def derive_secret(self, pos: int) -> bytes | None:
        if not self.ext.is_private:
            return None
        key = self._fixed()  # private here: derived from the private ext key
        if self.derive_type is Derive.UNHARDENED:
            key = key.derive(pos)
        elif self.derive_type is Derive.HARDENED:
            key = key.derive(pos | HARDENED)
        return key.secret

    def _body(self, private: bool) -> str:
        ext = self.ext if private else self.ext.neuter()
        out = ext.serialize(self.params) + format_path(self.path, self.apostrophe)
        if self.derive_type is Derive.UNHARDENED:
            out += "/*"
        elif self.derive_type is Derive.HARDENED:
            out += "/*" + ("'" if self.apostrophe else "h")
        return out


class MuSigKey(KeyExpr):
    """musig(KEY,KEY,...) with an optional /NUM/.../* derivation after it (BIP390): the BIP327
    aggregate of the participants' keys (sorted first), derived further as an xpub (BIP328)
    when a path follows. Participants are ranged, or the derivation after musig() is, never
    both; hardened steps are never allowed after musig()."""

    def __init__(self, participants: Sequence[KeyExpr], path: Sequence[int], derive: Derive,
                 params: ChainParams) -> None:
        self.participants = list(participants)
        self.path = tuple(path)
        self.derive_type = derive
        self.params = params
        self._aggregate: bytes | None = None
        self._fixed: ExtKey | None = None

    def ranged_participants(self) -> bool:
        return any(p.is_range() for p in self.participants)

    def is_range(self) -> bool:
        return self.derive_type is not Derive.NON_RANGED or self.ranged_participants()

    def has_private_key(self) -> bool:
        return any(p.has_private_key() for p in self.participants)

    def all_private(self) -> bool:
        return all(p.has_private_key() for p in self.participants)

    def size(self) -> int:
        return 32

    def _aggregate_at(self, pos: int) -> bytes:
        try:
            return aggregate_sorted([p.derive(pos).pubkey for p in self.participants])
        except MuSigError as e:
            raise DescriptorError(f"musig(): {e}") from None

    def derive(self, pos: int) -> DerivedKey:
        if self.is_range() and not 0 <= pos < HARDENED:
            raise DescriptorError(f"Derivation index {pos} out of range")
        if self.ranged_participants():
            agg = self._aggregate_at(pos)
            return DerivedKey(agg, hash160(agg)[:4], ())
        if self._aggregate is None:
            self._aggregate = self._aggregate_at(0)
        agg = self._aggregate
        fingerprint = hash160(agg)[:4]
        if not self.path and self.derive_type is Derive.NON_RANGED:
            return DerivedKey(agg, fingerprint, ())
        if self._fixed is None:
            self._fixed = synthetic_xpub(agg).derive_path(self.path)
        key = self._fixed
        path = self.path
        if self.derive_type is Derive.UNHARDENED:
            try:
                key = key.derive(pos)
            except BIP32Error as e:
                raise DescriptorError(f"Cannot derive key at index {pos}: {e}") from None
            path += (pos,)
        return DerivedKey(key.pubkey, fingerprint, path)

    def derive_secret(self, pos: int) -> bytes | None:
        return None  # there is no aggregate private key (MuSig2 signing is interactive)

    def _body(self, private: bool) -> str:
        out = "musig(" + ",".join(p.to_string(private) for p in self.participants) + ")"
        out += format_path(self.path)
        if self.derive_type is Derive.UNHARDENED:
            out += "/*"
        return out


# --- descriptors --------------------------------------------------------------------------------


@dataclass
class Expansion:
    """What a descriptor produces at one position: its scriptPubKeys and what spends them."""

    scripts: list[bytes]
    keys: list[DerivedKey]
    # redeemScripts and witnessScripts by hash160 / sha256, as a signer needs them
    subscripts: dict[bytes, bytes]


class Descriptor:
    """A parsed descriptor. Subclasses build scripts from derived keys and sub-scripts."""

    name = ""

    def __init__(
        self,
        params: ChainParams,
        keys: Sequence[KeyExpr] = (),
        subs: Sequence[Descriptor] = (),
    ) -> None:
        self.params = params
        self.keys = list(keys)
        self.subs = list(subs)

    # --- properties getdescriptorinfo reports ---

    def is_range(self) -> bool:
        return any(k.is_range() for k in self.keys) or any(s.is_range() for s in self.subs)

    def is_solvable(self) -> bool:
        return all(s.is_solvable() for s in self.subs)

    def has_scripts(self) -> bool:
        """False for unused(KEY), which holds a key and produces no script."""
        return True

    def has_private_keys(self) -> bool:
        """True when any key was given in private form (WIF or xprv), as Core reports it."""
        return any(k.has_private_key() for k in self.keys) or any(
            s.has_private_keys() for s in self.subs
        )

    # --- strings ---

    def _extra(self) -> str:
        return ""

    def _subs_string(self, private: bool) -> str:
        return ",".join(s._string(private) for s in self.subs)

    def _string(self, private: bool) -> str:
        extra = self._extra()
        args = [extra] if extra else []
        args += [k.to_string(private) for k in self.keys]
        subs = self._subs_string(private)
        if subs:
            args.append(subs)
        return f"{self.name}({','.join(args)})"

    def to_string(self, private: bool = False) -> str:
        """The canonical form with its checksum; private=True keeps WIF/xprv keys."""
        return add_checksum(self._string(private))

    def __str__(self) -> str:
        return self.to_string()

    # --- expansion ---

    def _make_scripts(
        self, pubkeys: list[bytes], subscripts: list[bytes], out: dict[bytes, bytes]
    ) -> list[bytes]:
        raise NotImplementedError

    def _expand(self, pos: int, keys_out: list[DerivedKey], subs_out: dict[bytes, bytes]
                ) -> list[bytes]:
        derived = [k.derive(pos) for k in self.keys]
        keys_out.extend(derived)
        subscripts = []
        for s in self.subs:
            scripts = s._expand(pos, keys_out, subs_out)
            assert len(scripts) == 1
            subscripts.append(scripts[0])
        return self._make_scripts([d.pubkey for d in derived], subscripts, subs_out)

    def _provide(self, pos: int, prov: SigningProvider) -> list[bytes]:
        """Like _expand, recording keys, origins, sub-scripts and taproot trees in prov the way
        Core's Expand fills its FlatSigningProvider."""
        derived = []
        for k in self.keys:
            d = k.derive(pos)
            prov.add_key(d, k.origin is not None)
            derived.append(d)
        subscripts = [s._provide(pos, prov)[0] for s in self.subs]
        out: dict[bytes, bytes] = {}
        scripts = self._make_scripts([d.pubkey for d in derived], subscripts, out)
        for sub in out.values():
            prov.scripts.setdefault(hash160(sub), sub)
        return scripts

    def expand_full(self, pos: int = 0) -> Expansion:
        keys: list[DerivedKey] = []
        subs: dict[bytes, bytes] = {}
        scripts = self._expand(pos, keys, subs)
        return Expansion(scripts, keys, subs)

    def expand(self, pos: int = 0) -> list[bytes]:
        """The scriptPubKeys at position pos (ignored by a descriptor that is not ranged)."""
        return self._expand(pos, [], {})


class AddrDescriptor(Descriptor):
    name = "addr"

    def __init__(self, params: ChainParams, script: bytes) -> None:
        super().__init__(params)
        self.script = script

    def _extra(self) -> str:
        dest = script_to_destination(self.script)
        assert dest is not None
        return encode_destination(dest, self.params)

    def is_solvable(self) -> bool:
        return False

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        return [self.script]


class RawDescriptor(Descriptor):
    name = "raw"

    def __init__(self, params: ChainParams, script: bytes) -> None:
        super().__init__(params)
        self.script = script

    def _extra(self) -> str:
        return self.script.hex()

    def is_solvable(self) -> bool:
        return False

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        return [self.script]


class PKDescriptor(Descriptor):
    name = "pk"

    def __init__(self, params: ChainParams, key: KeyExpr, xonly: bool = False) -> None:
        super().__init__(params, [key])
        self.xonly = xonly

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        pk = pubkeys[0][1:] if self.xonly and len(pubkeys[0]) == 33 else pubkeys[0]
        return [p2pk_script(pk)]


class PKHDescriptor(Descriptor):
    name = "pkh"

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        return [p2pkh_script(hash160(pubkeys[0]))]


class WPKHDescriptor(Descriptor):
    name = "wpkh"

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        return [p2wpkh_script(hash160(pubkeys[0]))]


class ComboDescriptor(Descriptor):
    """P2PK, P2PKH, and for a compressed key also P2WPKH and P2SH-P2WPKH (BIP384)."""

    name = "combo"

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        pk = pubkeys[0]
        h = hash160(pk)
        scripts = [p2pk_script(pk), p2pkh_script(h)]
        if len(pk) == 33:
            wpkh = p2wpkh_script(h)
            wh = hash160(wpkh)
            out[wh] = wpkh
            scripts += [wpkh, p2sh_script(wh)]
        return scripts


class MultisigDescriptor(Descriptor):
    """multi / sortedmulti: k-of-n with OP_CHECKMULTISIG."""

    base_name = "multi"

    def __init__(
        self, params: ChainParams, threshold: int, keys: Sequence[KeyExpr], sort: bool
    ) -> None:
        super().__init__(params, keys)
        self.threshold = threshold
        self.sort = sort
        self.name = ("sorted" if sort else "") + self.base_name

    def _extra(self) -> str:
        return str(self.threshold)

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        keys = sorted(pubkeys) if self.sort else pubkeys
        return [multisig_script(self.threshold, keys)]


class MultiADescriptor(MultisigDescriptor):
    """multi_a / sortedmulti_a: k-of-n with OP_CHECKSIGADD, for tapscript leaves (BIP387)."""

    base_name = "multi_a"

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        xkeys = [p[1:] for p in pubkeys]
        if self.sort:
            xkeys.sort()
        return [_multi_a_script(self.threshold, xkeys)]


class SHDescriptor(Descriptor):
    name = "sh"

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        redeem = subscripts[0]
        h = hash160(redeem)
        out[h] = redeem
        return [p2sh_script(h)]


class WSHDescriptor(Descriptor):
    name = "wsh"

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        ws = subscripts[0]
        h = sha256(ws)
        out[h] = ws
        return [p2wsh_script(h)]


class TRDescriptor(Descriptor):
    """tr(KEY) or tr(KEY,TREE); depths[i] is the depth of leaf subs[i] in the tree."""

    name = "tr"

    def __init__(
        self,
        params: ChainParams,
        internal: KeyExpr,
        leaves: Sequence[Descriptor],
        depths: Sequence[int],
    ) -> None:
        super().__init__(params, [internal], leaves)
        self.depths = list(depths)

    def _subs_string(self, private: bool) -> str:
        return _tree_string([s._string(private) for s in self.subs], self.depths)

    def _provide(self, pos: int, prov: SigningProvider) -> list[bytes]:
        d = self.keys[0].derive(pos)
        prov.add_key(d, self.keys[0].origin is not None)
        leaves = [s._provide(pos, prov)[0] for s in self.subs]
        scripts = self._make_scripts([d.pubkey], leaves, {})
        prov.tr_trees[scripts[0][2:]] = (d.pubkey[1:], list(zip(self.depths, leaves, strict=True)))
        return scripts

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        leaves = [(d, tapleaf_hash(s)) for d, s in zip(self.depths, subscripts, strict=True)]
        root = taproot_merkle_root(leaves)
        internal = pubkeys[0][1:]
        return [p2tr_script(taproot_output_key(internal, root))]


class UnusedDescriptor(Descriptor):
    """unused(KEY): a key the wallet holds that produces no script (Core 29+)."""

    name = "unused"

    def has_scripts(self) -> bool:
        return False

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        return []


class RawTRDescriptor(Descriptor):
    """rawtr(KEY): the key is the output key itself, no tweak."""

    name = "rawtr"

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        return [p2tr_script(pubkeys[0][1:])]


def _tree_string(leaves: Sequence[str], depths: Sequence[int]) -> str:
    """A tr() script tree from its leaves in depth-first order: the braces come back from the
    leaf depths, as in Core's TRDescriptor."""
    out = ""
    path: list[bool] = []
    for pos, depth in enumerate(depths):
        if pos:
            out += ","
        while len(path) <= depth:
            if path:
                out += "{"
            path.append(False)
        out += leaves[pos]
        while path and path[-1]:
            if len(path) > 1:
                out += "}"
            path.pop()
        if path:
            path[-1] = True
    return out


# --- parser -------------------------------------------------------------------------------------


def _expr(sp: str) -> tuple[str, str]:
    """Split off one expression: up to the first ',', ')' or '}' outside brackets."""
    level = 0
    for i, c in enumerate(sp):
        if c in "({":
            level += 1
        elif level and c in ")}":
            level -= 1
        elif level == 0 and c in ")},":
            return sp[:i], sp[i:]
    return sp, ""


def _func(name: str, expr: str) -> str | None:
    """The argument text of name(...), if expr is exactly that call."""
    n = len(name)
    if len(expr) >= n + 2 and expr.startswith(name) and expr[n] == "(" and expr[-1] == ")":
        return expr[n + 1 : -1]
    return None


def _is_hex(s: str) -> bool:
    return len(s) > 0 and len(s) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in s)


def _to_uint32(s: str) -> int | None:
    if not s or not s.isascii() or not s.isdigit():
        return None
    v = int(s)
    return v if v <= 0xFFFFFFFF else None


class _Apostrophe:
    """Which hardened marker the key expression used last (Core keeps one flag per key)."""

    value = False


class _Multipath(threading.local):
    """The lengths of the multipath (<a;b;...>) steps met while parsing, when the caller
    expands them (parse_descriptors); None: multipath is not accepted here."""

    lengths: list[int] | None = None


_MULTIPATH = _Multipath()


def _path_index(elem: str, apos: _Apostrophe) -> int:
    try:
        index = parse_path_element(elem)
    except BIP32Error as e:
        raise DescriptorError(str(e)) from None
    if index & HARDENED:
        apos.value = elem.endswith("'")
    return index


def _parse_key_path(elems: Sequence[str], apos: _Apostrophe, allow_multipath: bool
                    ) -> list[int]:
    path = []
    seen_multipath = False
    for elem in elems:
        if elem.startswith("<") and elem.endswith(">"):
            if not allow_multipath:
                raise DescriptorError(
                    f"Key path value '{elem}' specifies multipath in a section where "
                    "multipath is not allowed"
                )
            if seen_multipath:
                raise DescriptorError("Multiple multipath key path specifiers found")
            seen_multipath = True
            items = elem[1:-1].split(";")
            if len(items) < 2:
                raise DescriptorError(
                    "Multipath key path specifiers must have at least two items")
            values: list[int] = []
            for item in items:
                index = _path_index(item, apos)
                if index in values:
                    raise DescriptorError(
                        f"Duplicated key path value {index & ~HARDENED} in multipath specifier")
                values.append(index)
            if _MULTIPATH.lengths is None:
                raise DescriptorError("Multipath key expressions (<a;b>) are not accepted here")
            _MULTIPATH.lengths.append(len(values))
            path.append(values[0])
            continue
        path.append(_path_index(elem, apos))
    return path


def _parse_pubkey_inner(sp: str, ctx: Ctx, params: ChainParams, apos: _Apostrophe) -> KeyExpr:
    permit_uncompressed = ctx in (Ctx.TOP, Ctx.P2SH)
    split = sp.split("/")
    s = split[0]
    if not s:
        raise DescriptorError("No key provided")
    if s[0].isspace() or s[-1].isspace():
        raise DescriptorError(f"Key '{s}' is invalid due to whitespace")
    if len(split) == 1:
        if _is_hex(s):
            data = bytes.fromhex(s)
            if pubkey_valid_size(data) and is_hybrid(data):
                raise DescriptorError("Hybrid public keys are not allowed")
            if is_fully_valid_pubkey(data):
                if permit_uncompressed or len(data) == 33:
                    return ConstKey(data, params)
                raise DescriptorError("Uncompressed keys are not allowed")
            if len(data) == 32 and ctx is Ctx.P2TR and is_valid_xonly(data):
                return ConstKey(b"\x02" + data, params, xonly=True)
            raise DescriptorError(f"Pubkey '{s}' is invalid")
        try:
            secret, compressed = decode_wif(s, params)
        except WIFError:
            pass
        else:
            if not (permit_uncompressed or compressed):
                raise DescriptorError("Uncompressed keys are not allowed")
            pub = pubkey_from_secret(secret, compressed)
            return ConstKey(pub, params, xonly=ctx is Ctx.P2TR, secret=secret)
    try:
        ext = ExtKey.deserialize(s, params)
    except BIP32Error:
        raise DescriptorError(f"key '{s}' is not valid") from None
    derive = Derive.NON_RANGED
    last = split[-1] if len(split) > 1 else None
    if last == "*":
        split.pop()
        derive = Derive.UNHARDENED
    elif last in ("*'", "*h"):
        apos.value = last == "*'"
        split.pop()
        derive = Derive.HARDENED
    path = _parse_key_path(split[1:], apos, allow_multipath=True)
    return BIP32Key(ext, path, derive, params)


def _parse_musig(sp: str, params: ChainParams) -> KeyExpr:
    """musig(KEY,...)[/NUM/.../[*]] with Core's checks and messages (BIP390)."""
    closes = [i for i, c in enumerate(sp) if c == ")"]
    if len(closes) > 1:
        raise DescriptorError("Too many ')' in musig() expression")
    if not closes:
        raise DescriptorError("Invalid musig() expression")
    inner, rest = sp[len("musig("):closes[0]], sp[closes[0] + 1:]
    participants: list[KeyExpr] = []
    multipath = _MULTIPATH.lengths
    participant_lengths: list[int] = []
    while inner or not participants:
        if participants:
            if not inner.startswith(","):
                raise DescriptorError(f"musig(): expected ',', got '{inner[0]}'")
            inner = inner[1:]
        elif not inner:
            raise DescriptorError("musig(): Must contain key expressions")
        arg, inner = _expr(inner)
        before = len(multipath) if multipath is not None else 0
        participants.append(_key("musig(): ", arg, Ctx.MUSIG, params))
        if multipath is not None and len(multipath) > before:
            participant_lengths.append(multipath[-1])
    path: list[int] = []
    derive = Derive.NON_RANGED
    if rest:
        if not rest.startswith("/"):
            raise DescriptorError("Invalid musig() expression")
        if not all(isinstance(p, BIP32Key) for p in participants):
            raise DescriptorError(
                "musig(): derivation requires all participants to be xpubs or xprvs")
        if any(p.is_range() for p in participants):
            raise DescriptorError(
                "musig(): Cannot have ranged participant keys if musig() also has derivation")
        elems = rest[1:].split("/")
        if elems[-1] == "*":
            elems.pop()
            derive = Derive.UNHARDENED
        elif elems[-1] in ("*'", "*h"):
            raise DescriptorError("musig(): Cannot have hardened child derivation")
        before = len(multipath) if multipath is not None else 0
        try:
            path = _parse_key_path(elems, _Apostrophe(), allow_multipath=True)
        except DescriptorError as e:
            raise DescriptorError(f"musig(): {e}") from None
        if any(step & HARDENED for step in path) or any(
                ("'" in e or "h" in e) for e in elems if e.startswith("<")):
            raise DescriptorError("musig(): cannot have hardened derivation steps")
        if multipath is not None and len(multipath) > before and participant_lengths:
            raise DescriptorError("musig(): Cannot have multipath participant keys if musig() "
                                  "is also multipath")
    if len(set(participant_lengths)) > 1:
        raise DescriptorError("musig(): Multipath derivation paths have mismatched lengths")
    return MuSigKey(participants, path, derive, params)


def _parse_pubkey(sp: str, ctx: Ctx, params: ChainParams) -> KeyExpr:
    if sp.startswith("musig("):
        if ctx is not Ctx.P2TR:
            raise DescriptorError("musig() is only allowed in tr() and rawtr()")
        return _parse_musig(sp, params)
    origin_split = sp.split("]")
    if len(origin_split) > 2:
        raise DescriptorError("Multiple ']' characters found for a single pubkey")
    apos = _Apostrophe()
    if len(origin_split) == 1:
        key = _parse_pubkey_inner(sp, ctx, params, apos)
        key.apostrophe = apos.value
        return key
    origin_text = origin_split[0]
    if not origin_text or origin_text[0] != "[":
        got = origin_text[0] if origin_text else "]"
        raise DescriptorError(
            f"Key origin start '[ character expected but not found, got '{got}' instead"
        )
    slash_split = origin_text[1:].split("/")
    fpr = slash_split[0]
    if len(fpr) != 8:
        raise DescriptorError(
            f"Fingerprint is not 4 bytes ({len(fpr)} characters instead of 8 characters)"
        )
    if not _is_hex(fpr):
        raise DescriptorError(f"Fingerprint '{fpr}' is not hex")
    path = _parse_key_path(slash_split[1:], apos, allow_multipath=False)
    key = _parse_pubkey_inner(origin_split[1], ctx, params, apos)
    key.origin = KeyOrigin(bytes.fromhex(fpr), tuple(path))
    key.apostrophe = apos.value
    return key


def _key(prefix: str, sp: str, ctx: Ctx, params: ChainParams) -> KeyExpr:
    try:
        return _parse_pubkey(sp, ctx, params)
    except DescriptorError as e:
        raise DescriptorError(prefix + str(e)) from None


_SCRIPT_CTXS = (Ctx.TOP, Ctx.P2SH, Ctx.P2WSH)


def _parse_multi(
    inner: str, ctx: Ctx, params: ChainParams, tapscript: bool, sort: bool
) -> Descriptor:
    threshold_text, rest = _expr(inner)
    thres = _to_uint32(threshold_text)
    if thres is None:
        raise DescriptorError(f"Multi threshold '{threshold_text}' is not valid")
    keys: list[KeyExpr] = []
    script_size = 0
    while rest:
        if not rest.startswith(","):
            raise DescriptorError(f"Multi: expected ',', got '{rest[0]}'")
        arg, rest = _expr(rest[1:])
        key = _key("Multi: ", arg, ctx, params)
        script_size += key.size() + 1
        keys.append(key)
    n = len(keys)
    if not tapscript and not 1 <= n <= MAX_PUBKEYS_PER_MULTISIG:
        raise DescriptorError(
            f"Cannot have {n} keys in multisig; must have between 1 and "
            f"{MAX_PUBKEYS_PER_MULTISIG} keys, inclusive"
        )
    if tapscript and not 1 <= n <= MAX_PUBKEYS_PER_MULTI_A:
        raise DescriptorError(
            f"Cannot have {n} keys in multi_a; must have between 1 and "
            f"{MAX_PUBKEYS_PER_MULTI_A} keys, inclusive"
        )
    if thres < 1:
        raise DescriptorError(f"Multisig threshold cannot be {thres}, must be at least 1")
    if thres > n:
        raise DescriptorError(
            "Multisig threshold cannot be larger than the number of keys; "
            f"threshold is {thres} but only {n} keys specified"
        )
    if ctx is Ctx.TOP and n > 3:
        raise DescriptorError(f"Cannot have {n} pubkeys in bare multisig; only at most 3 pubkeys")
    if ctx is Ctx.P2SH and script_size + 3 > MAX_SCRIPT_ELEMENT_SIZE:
        raise DescriptorError(
            f"P2SH script is too large, {script_size + 3} bytes is larger than "
            f"{MAX_SCRIPT_ELEMENT_SIZE} bytes"
        )
    if tapscript:
        return MultiADescriptor(params, thres, keys, sort)
    return MultisigDescriptor(params, thres, keys, sort)


def _parse_tr(inner: str, params: ChainParams) -> Descriptor:
    arg, rest = _expr(inner)
    internal = _key("tr(): ", arg, Ctx.P2TR, params)
    leaves: list[Descriptor] = []
    depths: list[int] = []
    if rest:
        if not rest.startswith(","):
            raise DescriptorError(f"tr: expected ',', got '{rest[0]}'")
        rest = rest[1:]
        # branches[i]: False while in the left child at depth i+1, True in the right one.
        branches: list[bool] = []
        while True:
            while rest.startswith("{"):
                rest = rest[1:]
                branches.append(False)
                if len(branches) > TAPROOT_CONTROL_MAX_NODE_COUNT:
                    raise DescriptorError(
                        f"tr() supports at most {TAPROOT_CONTROL_MAX_NODE_COUNT} nesting levels"
                    )
            sarg, rest = _expr(rest)
            leaf, leftover = _parse_script(sarg, Ctx.P2TR, params)
            if leftover:
                raise DescriptorError(f"Unexpected '{leftover}' after script expression")
            leaves.append(leaf)
            depths.append(len(branches))
            while branches and branches[-1]:
                if not rest.startswith("}"):
                    raise DescriptorError("tr(): expected '}' after script expression")
                rest = rest[1:]
                branches.pop()
            if branches and not branches[-1]:
                if not rest.startswith(","):
                    raise DescriptorError("tr(): expected ',' after script expression")
                rest = rest[1:]
                branches[-1] = True
            if not branches:
                break
        if rest:
            raise DescriptorError("tr(): expected ')' after script expression")
    return TRDescriptor(params, internal, leaves, depths)


def _parse_script(sp: str, ctx: Ctx, params: ChainParams) -> tuple[Descriptor, str]:
    """Parse one SCRIPT expression at the start of sp; return it and the unparsed rest."""
    expr, rest = _expr(sp)

    if (inner := _func("pk", expr)) is not None:
        key = _key("pk(): ", inner, ctx, params)
        return PKDescriptor(params, key, xonly=ctx is Ctx.P2TR), rest

    if (inner := _func("pkh", expr)) is not None:
        if ctx not in _SCRIPT_CTXS:
            raise DescriptorError("Can only have pkh() at top level, in sh(), or in wsh()")
        return PKHDescriptor(params, [_key("pkh(): ", inner, ctx, params)]), rest

    if (inner := _func("combo", expr)) is not None:
        if ctx is not Ctx.TOP:
            raise DescriptorError("Can only have combo() at top level")
        return ComboDescriptor(params, [_key("combo(): ", inner, ctx, params)]), rest

    for name, tapscript, sort in (
        ("multi", False, False),
        ("sortedmulti", False, True),
        ("multi_a", True, False),
        ("sortedmulti_a", True, True),
    ):
        inner = _func(name, expr)
        if inner is None:
            continue
        if tapscript and ctx is not Ctx.P2TR:
            raise DescriptorError("Can only have multi_a/sortedmulti_a inside tr()")
        if not tapscript and ctx not in _SCRIPT_CTXS:
            raise DescriptorError(
                "Can only have multi/sortedmulti at top level, in sh(), or in wsh()"
            )
        return _parse_multi(inner, ctx, params, tapscript, sort), rest

    if (inner := _func("wpkh", expr)) is not None:
        if ctx not in (Ctx.TOP, Ctx.P2SH):
            raise DescriptorError("Can only have wpkh() at top level or inside sh()")
        return WPKHDescriptor(params, [_key("wpkh(): ", inner, Ctx.P2WPKH, params)]), rest

    for name, allowed, sub_ctx, cls, err in (
        ("sh", (Ctx.TOP,), Ctx.P2SH, SHDescriptor, "Can only have sh() at top level"),
        ("wsh", (Ctx.TOP, Ctx.P2SH), Ctx.P2WSH, WSHDescriptor,
         "Can only have wsh() at top level or inside sh()"),
    ):
        inner = _func(name, expr)
        if inner is None:
            continue
        if ctx not in allowed:
            raise DescriptorError(err)
        sub, leftover = _parse_script(inner, sub_ctx, params)
        if leftover:
            raise DescriptorError(f"{name}(): unexpected '{leftover}' after script expression")
        return cls(params, subs=[sub]), rest

    if (inner := _func("addr", expr)) is not None:
        if ctx is not Ctx.TOP:
            raise DescriptorError("Can only have addr() at top level")
        try:
            dest = decode_address(inner, params)
        except AddressError:
            raise DescriptorError("Address is not valid") from None
        return AddrDescriptor(params, dest.script), rest

    if (inner := _func("tr", expr)) is not None:
        if ctx is not Ctx.TOP:
            raise DescriptorError("Can only have tr at top level")
        return _parse_tr(inner, params), rest

    if (inner := _func("rawtr", expr)) is not None:
        if ctx is not Ctx.TOP:
            raise DescriptorError("Can only have rawtr at top level")
        arg, more = _expr(inner)
        if more:
            raise DescriptorError("rawtr(): only one key expected.")
        return RawTRDescriptor(params, [_key("rawtr(): ", arg, Ctx.P2TR, params)]), rest

    if (inner := _func("unused", expr)) is not None:
        if ctx is not Ctx.TOP:
            raise DescriptorError("Can only have unused at top level")
        arg, more = _expr(inner)
        if more:
            raise DescriptorError("unused(): only one key expected")
        key = _parse_pubkey(arg, ctx, params)
        if key.is_range():
            raise DescriptorError("unused(): key cannot be ranged")
        return UnusedDescriptor(params, [key]), rest

    if (inner := _func("raw", expr)) is not None:
        if ctx is not Ctx.TOP:
            raise DescriptorError("Can only have raw() at top level")
        if not _is_hex(inner):
            raise DescriptorError("Raw script is not hex")
        return RawDescriptor(params, bytes.fromhex(inner)), rest

    ms = _parse_miniscript(expr, ctx, params)
    if ms is not None:
        return ms, rest
    if ctx is Ctx.P2SH:
        raise DescriptorError("A function is needed within P2SH")
    if ctx is Ctx.P2WSH:
        raise DescriptorError("A function is needed within P2WSH")
    raise DescriptorError(f"'{expr}' is not a valid descriptor function")


def _parse_payload(payload: str, params: ChainParams) -> Descriptor:
    result, rest = _parse_script(payload, Ctx.TOP, params)
    if rest:
        raise DescriptorError(f"Unexpected '{rest}' after descriptor")
    return result


class _DescriptorKeys(KeyCtx):
    """Miniscript keys of a parsed descriptor: indexes into its key expressions; `pubkeys`
    (the keys derived at one position) give the script's bytes."""

    def __init__(self, keys: Sequence[KeyExpr], pubkeys: Sequence[bytes] | None = None,
                 private: bool = False) -> None:
        self.keys = keys
        self.pubkeys = pubkeys
        self.private = private

    def key_bytes(self, key, ctx):  # type: ignore[no-untyped-def]
        assert self.pubkeys is not None
        pub = self.pubkeys[key]
        return pub[1:33] if ctx is MsContext.TAPSCRIPT else pub

    def key_hash(self, key, ctx):  # type: ignore[no-untyped-def]
        return hash160(self.key_bytes(key, ctx))

    def key_string(self, key):  # type: ignore[no-untyped-def]
        return self.keys[key].to_string(self.private)

    def key_id(self, key):  # type: ignore[no-untyped-def]
        try:
            return self.keys[key].derive(0).pubkey
        except DescriptorError:
            return self.keys[key].to_string()


class MiniscriptDescriptor(Descriptor):
    """A miniscript inside wsh() or as a tr() leaf (Core's MiniscriptDescriptor)."""

    def __init__(self, params: ChainParams, keys: Sequence[KeyExpr], node: MsNode) -> None:
        super().__init__(params, keys)
        self.node = node

    def _string(self, private: bool) -> str:
        text = self.node.to_string(_DescriptorKeys(self.keys, private=private))
        assert text is not None
        return text

    def _make_scripts(self, pubkeys, subscripts, out):  # type: ignore[no-untyped-def]
        return [self.node.to_script(_DescriptorKeys(self.keys, pubkeys))]


def _parse_miniscript(expr: str, ctx: Ctx, params: ChainParams) -> Descriptor | None:
    """Core's last try in ParseScript: the expression as miniscript (None if it is not)."""
    ms_ctx = MsContext.TAPSCRIPT if ctx is Ctx.P2TR else MsContext.P2WSH
    key_ctx = Ctx.P2TR if ctx is Ctx.P2TR else Ctx.P2WSH
    keys: list[KeyExpr] = []
    kctx = _DescriptorKeys(keys)

    def parse_key(text: str) -> int:
        keys.append(_parse_pubkey(text, key_ctx, params))
        return len(keys) - 1

    try:
        node = ms_parse(expr, ms_ctx, kctx, parse_key)
    except MiniscriptParseError:
        return None
    if ctx not in (Ctx.P2WSH, Ctx.P2TR):
        raise DescriptorError("Miniscript expressions can only be used in wsh or tr.")
    error = node.sanity_error(kctx)
    if error is not None:
        raise DescriptorError(error)
    return MiniscriptDescriptor(params, keys, node)


def parse_descriptor(
    desc: str, params: ChainParams, require_checksum: bool = False
) -> Descriptor:
    """Parse a descriptor string for params' chain (WIF, xpub and address prefixes).

    Raises DescriptorError with Core's message. The checksum is optional unless required.
    A multipath descriptor (<a;b> steps) is refused: parse_descriptors expands it.
    """
    payload, _ = split_checksum(desc, require_checksum)
    return _parse_payload(payload, params)


_MULTIPATH_STEP = re.compile(r"<([^<>]*)>")


def parse_descriptors(
    desc: str, params: ChainParams, require_checksum: bool = False
) -> list[Descriptor]:
    """Core's Parse: the descriptors a string stands for. One, unless its keys have multipath
    steps (BIP389, `xpub/<0;1>/*`): then one per position of the steps, every key taking
    the step's value at that position (all steps must have as many values)."""
    payload, _ = split_checksum(desc, require_checksum)
    if "<" not in payload:
        return [_parse_payload(payload, params)]
    _MULTIPATH.lengths = []
    try:
        first = _parse_payload(payload, params)
        lengths = _MULTIPATH.lengths
    finally:
        _MULTIPATH.lengths = None
    if not lengths:
        return [first]
    if len(set(lengths)) != 1:
        raise DescriptorError("Multipath derivation paths have mismatched lengths")
    out = []
    for i in range(lengths[0]):
        text = _MULTIPATH_STEP.sub(lambda m, i=i: m.group(1).split(";")[i], payload)
        out.append(_parse_payload(text, params))
    return out


# --- conveniences for RPC -----------------------------------------------------------------------


def descriptor_info(desc: str, params: ChainParams) -> dict:
    """The fields of Core's getdescriptorinfo."""
    descs = parse_descriptors(desc, params)
    d = descs[0]
    out: dict = {"descriptor": d.to_string()}
    if len(descs) > 1:
        out["multipath_expansion"] = [x.to_string() for x in descs]
    out.update({
        "checksum": get_descriptor_checksum(desc),
        "isrange": d.is_range(),
        "issolvable": d.is_solvable(),
        "hasprivatekeys": d.has_private_keys(),
    })
    return out


def parse_range(value: int | Sequence[int]) -> tuple[int, int]:
    """Core's ParseDescriptorRange: n means [0, n]; [begin, end] is inclusive."""
    if isinstance(value, bool):
        raise DescriptorRangeError("Range must be specified as end or as [begin,end]")
    if isinstance(value, int):
        begin, end = 0, value
    elif len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        begin, end = value[0], value[1]
        if begin > end:
            raise DescriptorRangeError(
                "Range specified as [begin,end] must not have begin after end"
            )
    else:
        raise DescriptorRangeError("Range must be specified as end or as [begin,end]")
    if begin < 0:
        raise DescriptorRangeError("Range should be greater or equal than 0")
    if (end >> 31) != 0:
        raise DescriptorRangeError("End of range is too high")
    if end >= begin + MAX_RANGE_SIZE:
        raise DescriptorRangeError("Range is too large")
    return begin, end


def expand(
    desc: str | Descriptor,
    params: ChainParams,
    index_or_range: int | Sequence[int] | None = None,
) -> list[bytes]:
    """scriptPubKeys of a descriptor: at one index (an int) or over an inclusive [begin, end]
    range (a pair). A descriptor that is not ranged gives its scripts once."""
    d = parse_descriptor(desc, params) if isinstance(desc, str) else desc
    if not d.is_range():
        return d.expand(0)
    if index_or_range is None:
        raise DescriptorRangeError("Range must be specified for a ranged descriptor")
    if isinstance(index_or_range, int):
        return d.expand(index_or_range)
    begin, end = parse_range(index_or_range)
    out: list[bytes] = []
    for i in range(begin, end + 1):
        out.extend(d.expand(i))
    return out


def to_addresses(desc: str | Descriptor, params: ChainParams, pos: int = 0) -> list[str | None]:
    """Addresses of the scripts at pos (None where a script, such as P2PK, has none)."""
    d = parse_descriptor(desc, params) if isinstance(desc, str) else desc
    return [script_to_address(s, params) for s in d.expand(pos)]


def derive_addresses(
    desc: str, params: ChainParams, range_: int | Sequence[int] | None = None,
    require_checksum: bool = False,
) -> list[str] | list[list[str]]:
    """Core's deriveaddresses, errors included (combo's P2PK script is skipped); for a
    multipath descriptor, one list of addresses per path. The RPC requires the checksum."""
    descs = parse_descriptors(desc, params, require_checksum)
    if len(descs) > 1:
        return [_derive_addresses(d, params, range_) for d in descs]
    return _derive_addresses(descs[0], params, range_)


def _derive_addresses(d: Descriptor, params: ChainParams,
                      range_: int | Sequence[int] | None) -> list[str]:
    if not d.is_range():
        if range_ is not None:
            raise DescriptorRangeError("Range should not be specified for an un-ranged descriptor")
        begin, end = 0, 0
    else:
        if range_ is None:
            raise DescriptorRangeError("Range must be specified for a ranged descriptor")
        begin, end = parse_range(range_)
    out: list[str] = []
    for i in range(begin, end + 1):
        scripts = d.expand(i)
        for s in scripts:
            addr = script_to_address(s, params)
            if addr is None:
                if len(scripts) > 1 and s[-1] == OP_CHECKSIG and len(s) in (35, 67):
                    continue
                raise DescriptorError("Descriptor does not have a corresponding address")
            out.append(addr)
    if not out:
        raise DescriptorError("Unexpected empty result")
    return out


def mining_script(desc: str, params: ChainParams) -> bytes:
    """The one scriptPubKey generatetodescriptor pays to (Core's getScriptFromDescriptor).

    combo() gives several scripts: Core takes P2WPKH for a compressed key, else P2PKH.
    """
    d = parse_descriptor(desc, params)
    if d.is_range():
        raise DescriptorRangeError(
            "Ranged descriptor not accepted. Maybe pass through deriveaddresses first?"
        )
    scripts = d.expand(0)
    if len(scripts) == 1:
        return scripts[0]
    return scripts[2] if len(scripts) == 4 else scripts[1]


# --- inference: what a script is, given what a descriptor knows (Core's InferDescriptor) ----------


class SigningProvider:
    """The parts of Core's FlatSigningProvider that InferDescriptor reads, filled in by expanding
    descriptors: public keys and their origins by hash160 of the key, redeem and witness scripts
    by hash160 of the script, and taproot trees by output key."""

    __slots__ = ("pubkeys", "origins", "scripts", "tr_trees")

    def __init__(self) -> None:
        self.pubkeys: dict[bytes, bytes] = {}
        self.origins: dict[bytes, tuple[bytes, tuple[int, ...]]] = {}
        self.scripts: dict[bytes, bytes] = {}
        # output key -> (internal x-only key, [(depth, leaf script)] in depth-first order)
        self.tr_trees: dict[bytes, tuple[bytes, list[tuple[int, bytes]]]] = {}

    def add_key(self, key: DerivedKey, explicit_origin: bool) -> None:
        """Record a derived key. A key's own origin (the fingerprint of the key, or of the
        extended key it comes from) does not replace one already known; an explicit [origin]
        does, as in Core."""
        kid = hash160(key.pubkey)
        self.pubkeys.setdefault(kid, key.pubkey)
        if explicit_origin:
            self.origins[kid] = (key.fingerprint, key.path)
        else:
            self.origins.setdefault(kid, (key.fingerprint, key.path))

    def add_descriptor(self, desc: Descriptor, pos: int = 0) -> list[bytes]:
        """Expand desc at pos into this provider (Core's Expand(pos, provider, out, provider));
        return its scripts."""
        return desc._provide(pos if desc.is_range() else 0, self)

    def origin_of_xonly(self, x: bytes) -> tuple[bytes, tuple[int, ...]] | None:
        """Core's GetKeyOriginByXOnly: the key with an even, then with an odd Y."""
        for prefix in (b"\x02", b"\x03"):
            origin = self.origins.get(hash160(prefix + x))
            if origin is not None:
                return origin
        return None


def _origin_prefix(origin: tuple[bytes, tuple[int, ...]] | None) -> str:
    # InferPubkey wraps the key with apostrophe=false, so hardened steps print as "h".
    if origin is None:
        return ""
    return "[" + origin[0].hex() + format_path(origin[1]) + "]"


def _infer_pubkey(pubkey: bytes, ctx: Ctx, prov: SigningProvider) -> str | None:
    """Core's InferPubkey: no hybrid keys, uncompressed ones only at top level and in sh()."""
    if not pubkey_valid_size(pubkey) or is_hybrid(pubkey):
        return None
    if ctx not in (Ctx.TOP, Ctx.P2SH) and len(pubkey) != 33:
        return None
    return _origin_prefix(prov.origins.get(hash160(pubkey))) + pubkey.hex()


def _infer_xonly(x: bytes, prov: SigningProvider) -> str:
    return _origin_prefix(prov.origin_of_xonly(x)) + x.hex()


def _match_multi_a(script: bytes) -> tuple[int, list[bytes]] | None:
    """Core's MatchMultiA: <k1> CHECKSIG <k2> CHECKSIGADD ... <n> NUMEQUAL, 32-byte keys."""
    if not script or script[0] != 32 or script[-1] != OP_NUMEQUAL:
        return None
    keys: list[bytes] = []
    i, end = 0, len(script)
    while end - i >= 34:
        if script[i] != 32:
            return None
        keys.append(script[i + 1 : i + 33])
        i += 33
        if script[i] != (OP_CHECKSIG if len(keys) == 1 else OP_CHECKSIGADD):
            return None
        i += 1
    if not keys or len(keys) > MAX_PUBKEYS_PER_MULTI_A:
        return None
    try:
        op, data, pc = get_op(script, i)
    except ScriptParseError:
        return None
    if pc != end - 1:  # exactly one more byte, the OP_NUMEQUAL checked above
        return None
    k = script_number(op, data, 1, len(keys))
    return None if k is None else (k, keys)


class _TreeNode:
    __slots__ = ("hash", "sub", "leaf", "explored", "inner", "done")

    def __init__(self, h: bytes | None = None) -> None:
        self.hash = h  # None while unknown
        self.sub: list[_TreeNode] | None = None
        self.leaf: bytes | None = None
        self.explored = False
        self.inner = False
        self.done = False


def _spend_data(internal: bytes, leaves: Sequence[tuple[int, bytes]]
                ) -> tuple[bytes | None, dict[bytes, set[bytes]]]:
    """What Core's TaprootBuilder::GetSpendData gives for these leaves: the merkle root and,
    per leaf script, its control blocks (the first byte left 0xc0: the parity bit changes no
    ordering, as every control block of a tree shares it)."""
    # Stack of (depth, hash, [(leaf script, merkle branch from the leaf up)]).
    stack: list[tuple[int, bytes, list[tuple[bytes, list[bytes]]]]] = []
    for depth, script in leaves:
        stack.append((depth, tapleaf_hash(script), [(script, [])]))
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            d, right, rleaves = stack.pop()
            _, left, lleaves = stack.pop()
            for _, branch in lleaves:
                branch.append(right)
            for _, branch in rleaves:
                branch.append(left)
            stack.append((d - 1, tapbranch_hash(left, right), lleaves + rleaves))
    if not stack:
        return None, {}
    head = bytes((TAPROOT_LEAF_TAPSCRIPT,)) + internal
    scripts: dict[bytes, set[bytes]] = {}
    for script, branch in stack[0][2]:
        scripts.setdefault(script, set()).add(head + b"".join(branch))
    return stack[0][1], scripts


def _infer_taproot_tree(internal: bytes, leaves: Sequence[tuple[int, bytes]]
                        ) -> list[tuple[int, bytes]] | None:
    """Core's InferTaprootTree: rebuild the tree from the control blocks of its leaves.

    The order of two siblings is not in the control blocks, so it comes out of the order Core
    walks them in: scripts in byte order, each one's control blocks shortest first. The
    subtree holding the first leaf walked becomes the left child. Two identical subtrees
    under one node share their control blocks; that node's right child is then filled in as
    a second copy of the left.
    """
    root_hash, spend = _spend_data(internal, leaves)
    if root_hash is None:
        return []
    root = _TreeNode(root_hash)
    for script in sorted(spend):
        for control in sorted(spend[script], key=lambda c: (len(c), c)):
            levels = (len(control) - TAPROOT_CONTROL_BASE_SIZE) // TAPROOT_CONTROL_NODE_SIZE
            node = root
            for depth in range(levels):
                if node.explored and not node.inner:
                    return None
                at = TAPROOT_CONTROL_BASE_SIZE + (levels - 1 - depth) * TAPROOT_CONTROL_NODE_SIZE
                h = control[at : at + TAPROOT_CONTROL_NODE_SIZE]
                if node.sub is not None:
                    for i in (0, 1):
                        this, other = node.sub[i], node.sub[1 - i]
                        if this.hash == h or (this.hash is None and other.hash != h):
                            this.hash = h
                            node = other
                            break
                    else:
                        return None
                else:
                    node.explored = node.inner = True
                    node.sub = [_TreeNode(), _TreeNode(h)]
                    node = node.sub[0]
            if node.sub is not None:
                return None
            node.explored = True
            node.inner = False
            node.leaf = script
            node.hash = tapleaf_hash(script)
    out: list[tuple[int, bytes]] = []
    stack = [root]
    while stack:
        node = stack[-1]
        if not node.explored:
            return None
        if not node.inner:
            assert node.leaf is not None
            out.append((len(stack) - 1, node.leaf))
            node.done = True
            stack.pop()
            continue
        assert node.sub is not None
        left, right = node.sub
        if (left.done and not right.done and not right.explored and right.hash is not None
                and tapbranch_hash(right.hash, right.hash) == node.hash):
            left.done = False  # walk the left subtree again, as the right one
            right.done = True
        elif left.done and right.done:
            left.done = right.done = False
            node.done = True
            stack.pop()
        elif not left.done:
            stack.append(left)
        else:
            stack.append(right)
    return out


class _InferKeys(KeyCtx):
    """Miniscript keys while inferring: (key bytes as in the script, text with any origin the
    provider knows), found from the script's bytes as Core's KeyParser does with a provider."""

    def __init__(self, prov: SigningProvider) -> None:
        self.prov = prov

    def key_bytes(self, key, ctx):  # type: ignore[no-untyped-def]
        return key[0]

    def key_hash(self, key, ctx):  # type: ignore[no-untyped-def]
        return hash160(key[0])

    def key_string(self, key):  # type: ignore[no-untyped-def]
        return key[1]

    def key_id(self, key):  # type: ignore[no-untyped-def]
        return key[0]

    def from_pk_bytes(self, data, ctx):  # type: ignore[no-untyped-def]
        if ctx is MsContext.TAPSCRIPT:
            return (data, _infer_xonly(data, self.prov)) if len(data) == 32 else None
        text = _infer_pubkey(data, Ctx.P2WSH, self.prov)
        return None if text is None else (data, text)

    def from_pkh_bytes(self, data, ctx):  # type: ignore[no-untyped-def]
        if ctx is MsContext.TAPSCRIPT:
            for pub in self.prov.pubkeys.values():
                if len(pub) == 33 and hash160(pub[1:]) == data:
                    return (pub[1:], _infer_xonly(pub[1:], self.prov))
            return None
        pub = self.prov.pubkeys.get(data)
        text = None if pub is None else _infer_pubkey(pub, Ctx.P2WSH, self.prov)
        return None if text is None else (pub, text)


def _infer_script(script: bytes, ctx: Ctx, prov: SigningProvider, params: ChainParams
                  ) -> str | None:
    """Core's InferScript, as a descriptor string without checksum (None: nothing fits in this
    context). Inside wsh() and tr() leaves, a script no template fits is tried as miniscript
    (kept when sane, as Core does)."""
    if ctx is Ctx.P2TR:
        if len(script) == 34 and script[0] == 32 and script[33] == OP_CHECKSIG:
            return f"pk({_infer_xonly(script[1:33], prov)})"
        ma = _match_multi_a(script)
        if ma is not None:
            return f"multi_a({ma[0]},{','.join(_infer_xonly(x, prov) for x in ma[1])})"

    kind, data = solver(script)
    script_ctx = ctx in (Ctx.TOP, Ctx.P2SH, Ctx.P2WSH)
    if kind == PUBKEY and script_ctx:
        key = _infer_pubkey(data[0], ctx, prov)
        if key is not None:
            return f"pk({key})"
    if kind == PUBKEYHASH and script_ctx:
        pub = prov.pubkeys.get(data[0])
        key = None if pub is None else _infer_pubkey(pub, ctx, prov)
        if key is not None:
            return f"pkh({key})"
    if kind == WITNESS_V0_KEYHASH and ctx in (Ctx.TOP, Ctx.P2SH):
        pub = prov.pubkeys.get(data[0])
        key = None if pub is None else _infer_pubkey(pub, Ctx.P2WPKH, prov)
        if key is not None:
            return f"wpkh({key})"
    if kind == MULTISIG and script_ctx:
        keys = [_infer_pubkey(k, ctx, prov) for k in data[1:-1]]
        if all(k is not None for k in keys):
            return f"multi({data[0][0]},{','.join(keys)})"  # type: ignore[arg-type]
    if kind == SCRIPTHASH and ctx is Ctx.TOP:
        redeem = prov.scripts.get(data[0])
        sub = None if redeem is None else _infer_script(redeem, Ctx.P2SH, prov, params)
        if sub is not None:
            return f"sh({sub})"
    if kind == WITNESS_V0_SCRIPTHASH and ctx in (Ctx.TOP, Ctx.P2SH):
        ws = prov.scripts.get(ripemd160(data[0]))
        sub = None if ws is None else _infer_script(ws, Ctx.P2WSH, prov, params)
        if sub is not None:
            return f"wsh({sub})"
    if kind == WITNESS_V1_TAPROOT and ctx is Ctx.TOP:
        output = data[0]
        tree = prov.tr_trees.get(output)
        leaves = None if tree is None else _infer_taproot_tree(tree[0], tree[1])
        if tree is not None and leaves is not None:
            subs = [_infer_script(s, Ctx.P2TR, prov, params) for _, s in leaves]
            if all(s is not None for s in subs):
                key = _infer_xonly(tree[0], prov)
                if not subs:
                    return f"tr({key})"
                return f"tr({key},{_tree_string(subs, [d for d, _ in leaves])})"  # type: ignore[arg-type]
        if is_valid_xonly(output):
            return f"rawtr({_infer_xonly(output, prov)})"

    if ctx in (Ctx.P2WSH, Ctx.P2TR):
        ms_ctx = MsContext.P2WSH if ctx is Ctx.P2WSH else MsContext.TAPSCRIPT
        node = from_script(script, ms_ctx, _InferKeys(prov))
        if node is not None and node.is_sane():
            return node.to_string()

    if ctx is not Ctx.TOP:
        return None
    dest = script_to_destination(script)
    if dest is not None:
        return f"addr({encode_destination(dest, params)})"
    return f"raw({script.hex()})"


def infer_descriptor(script: bytes, params: ChainParams,
                     provider: SigningProvider | None = None) -> str:
    """Core's InferDescriptor(script, provider)->ToString(), checksum included.

    With keys, scripts and trees in the provider it names them (with their [origin]);
    without, it gives pk()/multi() for bare keys, rawtr() for a taproot output, addr() for
    anything else with an address and raw() for the rest.
    """
    body = _infer_script(script, Ctx.TOP, provider or SigningProvider(), params)
    assert body is not None  # the top level always ends in addr() or raw()
    return add_checksum(body)


def infer_descriptor_for_script(
    desc: str | Descriptor, params: ChainParams, script: bytes, pos: int = 0
) -> str | None:
    """What scantxoutset reports as "desc" for an output with this script found by scanning
    desc, where desc makes the script at derivation index pos; None if it does not.

    Core infers the descriptor of the script from a provider holding every key, origin and
    script the scan descriptor expanded to: `wpkh(xpub/0/*)` finds
    `wpkh([fingerprint/0/5]02ab...)#...` at index 5 (the fingerprint is the origin's, else the
    xpub's own), `wpkh(02ab...)` finds `wpkh([hash160(02ab..)[:4]]02ab...)#...` (a plain key
    is its own origin), `addr(...)` finds `addr(...)`, a taproot address finds `rawtr(...)`.
    """
    d = parse_descriptor(desc, params) if isinstance(desc, str) else desc
    prov = SigningProvider()
    if script not in prov.add_descriptor(d, pos):
        return None
    return infer_descriptor(script, params, prov)


SCAN_DEFAULT_RANGE = (0, 1000)


class ScanObject:
    """One scantxoutset scan object, as Core's EvalDescriptorStringOrObject expands it.

    `scripts` are the scriptPubKeys to look for, over the range for a ranged descriptor (the
    range is ignored for one that is not ranged); `infer(script)` is the "desc" Core reports
    for a match, from a provider that holds everything the whole range expanded to. When two
    scan objects make the same script, Core reports the first one's inference.

    The range is checked before the descriptor is parsed, as in Core, so a bad range is a
    DescriptorRangeError (-8) even with a bad descriptor. A hardened step that needs a private
    key raises DescriptorError "Cannot derive script without private keys: '<desc>'" (-5).
    """

    def __init__(self, desc: str, params: ChainParams,
                 range_: int | Sequence[int] | None = None) -> None:
        begin, end = SCAN_DEFAULT_RANGE if range_ is None else parse_range(range_)
        self.params = params
        self.parsed = parse_descriptors(desc, params)  # several for a multipath one
        self.descriptor = self.parsed[0]
        if not self.descriptor.is_range():
            begin = end = 0
        self.range = (begin, end)
        self.provider = SigningProvider()
        self.scripts: list[bytes] = []
        try:
            for d in self.parsed:
                for pos in range(begin, end + 1):
                    self.scripts.extend(d._provide(pos, self.provider))
        except DescriptorError:
            raise DescriptorError(
                f"Cannot derive script without private keys: '{desc}'"
            ) from None

    def infer(self, script: bytes) -> str:
        return infer_descriptor(script, self.params, self.provider)

    def descriptors(self) -> dict[bytes, str]:
        """{script: inferred descriptor} for every script of the scan object."""
        out: dict[bytes, str] = {}
        for script in self.scripts:
            if script not in out:
                out[script] = self.infer(script)
        return out
