"""Miniscript (BIP379) as Bitcoin Core implements it (src/script/miniscript.{h,cpp}): the
fragments and wrappers, their type system (basic types B V K W and properties z o n d u e f
s m x, timelock kinds g h i j and k, "no timelock mixing"), the script each compiles to,
decoding a script back into a miniscript, the resource limits Core checks, and the string
form with its syntactic sugar (pk, pkh, t:, l:, u:, and_n).

Keys are opaque to this module: a `KeyCtx` turns them into bytes (33-byte keys in P2WSH,
32-byte x-only keys in tapscript), into the 20-byte hash pk_h uses, and into text, and
builds them from those bytes when decoding. The descriptor module supplies one that knows the
keys of a signing provider (inference) and one for descriptor key expressions (parsing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from consensus.script.errors import ScriptError
from consensus.script.num import decode_num, encode_num
from consensus.script.opcodes import (
    OP_0,
    OP_0NOTEQUAL,
    OP_1,
    OP_16,
    OP_ADD,
    OP_BOOLAND,
    OP_BOOLOR,
    OP_CHECKLOCKTIMEVERIFY,
    OP_CHECKMULTISIG,
    OP_CHECKMULTISIGVERIFY,
    OP_CHECKSEQUENCEVERIFY,
    OP_CHECKSIG,
    OP_CHECKSIGADD,
    OP_CHECKSIGVERIFY,
    OP_DUP,
    OP_ELSE,
    OP_ENDIF,
    OP_EQUAL,
    OP_EQUALVERIFY,
    OP_FROMALTSTACK,
    OP_HASH160,
    OP_HASH256,
    OP_IF,
    OP_IFDUP,
    OP_NOTIF,
    OP_NUMEQUAL,
    OP_NUMEQUALVERIFY,
    OP_PUSHDATA4,
    OP_RIPEMD160,
    OP_SHA256,
    OP_SIZE,
    OP_SWAP,
    OP_TOALTSTACK,
    OP_VERIFY,
)
from consensus.script.script import ScriptParseError, get_op, is_minimal_push, push_data, push_int

MAX_OPS_PER_SCRIPT = 201
MAX_STANDARD_P2WSH_SCRIPT_SIZE = 3600
MAX_STANDARD_P2WSH_STACK_ITEMS = 100
MAX_STACK_SIZE = 1000
MAX_PUBKEYS_PER_MULTISIG = 20
MAX_PUBKEYS_PER_MULTI_A = 999
LOCKTIME_THRESHOLD = 500_000_000
SEQUENCE_LOCKTIME_TYPE_FLAG = 1 << 22


class MsContext(Enum):
    P2WSH = "p2wsh"
    TAPSCRIPT = "tapscript"


# --- types ---------------------------------------------------------------------------------

_TYPE_CHARS = "BVKWzondufesmxghijk"
_BIT = {c: 1 << i for i, c in enumerate(_TYPE_CHARS)}


def T(chars: str) -> int:  # noqa: N802 - Core's "..."_mst literal
    out = 0
    for c in chars:
        out |= _BIT[c]
    return out


def has(t: int, chars: str) -> bool:
    """Core's `t << "chars"_mst`: t has every property in chars."""
    m = T(chars)
    return t & m == m


def _if(cond: bool, t: int) -> int:
    return t if cond else 0


def type_string(t: int) -> str:
    return "".join(c for c in _TYPE_CHARS if t & _BIT[c])


class Fragment(Enum):
    JUST_0 = "0"
    JUST_1 = "1"
    PK_K = "pk_k"
    PK_H = "pk_h"
    OLDER = "older"
    AFTER = "after"
    SHA256 = "sha256"
    HASH256 = "hash256"
    RIPEMD160 = "ripemd160"
    HASH160 = "hash160"
    WRAP_A = "a"
    WRAP_S = "s"
    WRAP_C = "c"
    WRAP_D = "d"
    WRAP_V = "v"
    WRAP_J = "j"
    WRAP_N = "n"
    AND_V = "and_v"
    AND_B = "and_b"
    OR_B = "or_b"
    OR_C = "or_c"
    OR_D = "or_d"
    OR_I = "or_i"
    ANDOR = "andor"
    THRESH = "thresh"
    MULTI = "multi"
    MULTI_A = "multi_a"


_WRAPPERS = {Fragment.WRAP_A, Fragment.WRAP_S, Fragment.WRAP_C, Fragment.WRAP_D,
             Fragment.WRAP_V, Fragment.WRAP_J, Fragment.WRAP_N}
_HASHES = {Fragment.SHA256: 32, Fragment.HASH256: 32, Fragment.RIPEMD160: 20,
           Fragment.HASH160: 20}


def _no_mix(x: int, y: int) -> bool:
    """Neither side mixes a height lock with a time lock of the same kind of the other."""
    return not ((has(x, "g") and has(y, "h")) or (has(x, "h") and has(y, "g"))
                or (has(x, "i") and has(y, "j")) or (has(x, "j") and has(y, "i")))


def _compute_type(frag: Fragment, x: int, y: int, z: int, subs: Sequence[int], k: int,
                  n_subs: int, n_keys: int, ctx: MsContext) -> int:
    """Core's ComputeType (0: not valid)."""
    tap = ctx is MsContext.TAPSCRIPT
    # Argument checks first.
    if frag in (Fragment.OLDER, Fragment.AFTER) and not 1 <= k <= 0x7FFFFFFF:
        return 0
    if frag is Fragment.MULTI and (tap or not 1 <= k <= n_keys
                                   or n_keys > MAX_PUBKEYS_PER_MULTISIG):
        return 0
    if frag is Fragment.MULTI_A and (not tap or not 1 <= k <= n_keys
                                     or n_keys > MAX_PUBKEYS_PER_MULTI_A):
        return 0
    if frag is Fragment.THRESH and not 1 <= k <= n_subs:
        return 0
    gh = T("ghijk")
    if frag is Fragment.JUST_0:
        return T("Bzudemsxk")
    if frag is Fragment.JUST_1:
        return T("Bzufmxk")
    if frag is Fragment.PK_K:
        return T("Konudemsxk")
    if frag is Fragment.PK_H:
        return T("Knudemsxk")
    if frag is Fragment.OLDER:
        return (_if(bool(k & SEQUENCE_LOCKTIME_TYPE_FLAG), T("g"))
                | _if(not k & SEQUENCE_LOCKTIME_TYPE_FLAG, T("h")) | T("Bzfmxk"))
    if frag is Fragment.AFTER:
        return (_if(k >= LOCKTIME_THRESHOLD, T("i")) | _if(k < LOCKTIME_THRESHOLD, T("j"))
                | T("Bzfmxk"))
    if frag in _HASHES:
        return T("Bonudmk")
    if frag is Fragment.MULTI:
        return T("Bnudemsk")
    if frag is Fragment.MULTI_A:
        return T("Budemsk")
    if frag is Fragment.WRAP_A:
        return _if(has(x, "B"), T("W")) | (x & gh) | (x & T("udfems")) | T("x")
    if frag is Fragment.WRAP_S:
        return _if(has(x, "Bo"), T("W")) | (x & gh) | (x & T("udfemsx"))
    if frag is Fragment.WRAP_C:
        return _if(has(x, "K"), T("B")) | (x & gh) | (x & T("ondfem")) | T("us")
    if frag is Fragment.WRAP_D:
        return (_if(has(x, "Vz"), T("B")) | _if(has(x, "z"), T("o")) | _if(has(x, "f"), T("e"))
                | (x & gh) | (x & T("ms")) | _if(tap, T("u")) | T("ndx"))
    if frag is Fragment.WRAP_V:
        return _if(has(x, "B"), T("V")) | (x & gh) | (x & T("zonms")) | T("fx")
    if frag is Fragment.WRAP_J:
        return (_if(has(x, "Bn"), T("B")) | _if(has(x, "f"), T("e")) | (x & gh)
                | (x & T("oums")) | T("ndx"))
    if frag is Fragment.WRAP_N:
        return (x & gh) | (x & T("Bzondfems")) | T("ux")
    ghij = T("ghij")
    if frag is Fragment.AND_V:
        return (_if(has(x, "V"), y & T("KVB")) | (x & T("n")) | _if(has(x, "z"), y & T("n"))
                | _if(has(x | y, "z"), (x | y) & T("o")) | (x & y & T("dmz"))
                | ((x | y) & T("s")) | _if(has(y, "f") or has(x, "s"), T("f"))
                | (y & T("ux")) | ((x | y) & ghij)
                | _if(has(x & y, "k") and _no_mix(x, y), T("k")))
    if frag is Fragment.AND_B:
        return (_if(has(y, "W"), x & T("B")) | _if(has(x | y, "z"), (x | y) & T("o"))
                | (x & T("n")) | _if(has(x, "z"), y & T("n"))
                | _if(has(x & y, "s"), x & y & T("e")) | (x & y & T("dzm"))
                | _if(has(x & y, "f") or has(x, "sf") or has(y, "sf"), T("f"))
                | ((x | y) & T("s")) | T("ux") | ((x | y) & ghij)
                | _if(has(x & y, "k") and _no_mix(x, y), T("k")))
    if frag is Fragment.OR_B:
        return (_if(has(x, "Bd") and has(y, "Wd"), T("B"))
                | _if(has(x | y, "z"), (x | y) & T("o"))
                | _if(has(x | y, "s") and has(x & y, "e"), x & y & T("m"))
                | (x & y & T("zse")) | T("dux") | ((x | y) & ghij) | (x & y & T("k")))
    if frag is Fragment.OR_D:
        return (_if(has(x, "Bdu"), y & T("B")) | _if(has(y, "z"), x & T("o"))
                | _if(has(x, "e") and has(x | y, "s"), x & y & T("m"))
                | (x & y & T("zes")) | (y & T("ufd")) | T("x") | ((x | y) & ghij)
                | (x & y & T("k")))
    if frag is Fragment.OR_C:
        return (_if(has(x, "Bdu"), y & T("V")) | _if(has(y, "z"), x & T("o"))
                | _if(has(x, "e") and has(x | y, "s"), x & y & T("m"))
                | (x & y & T("zs")) | T("fx") | ((x | y) & ghij) | (x & y & T("k")))
    if frag is Fragment.OR_I:
        return ((x & y & T("VBKufs")) | _if(has(x & y, "z"), T("o"))
                | _if(has(x | y, "f"), (x | y) & T("e"))
                | _if(has(x | y, "s"), x & y & T("m")) | ((x | y) & T("d")) | T("x")
                | ((x | y) & ghij) | (x & y & T("k")))
    if frag is Fragment.ANDOR:
        yz = y & z
        return (_if(has(x, "Bdu"), yz & T("BKV")) | (x & yz & T("z"))
                | _if(has(x | yz, "z"), (x | yz) & T("o")) | (yz & T("u"))
                | _if(has(x, "s") or has(y, "f"), z & T("f")) | (z & T("d"))
                | _if(has(x, "s") or has(y, "f"), z & T("e"))
                | _if(has(x, "e") and has(x | y | z, "s"), x & yz & T("m"))
                | (z & (x | y) & T("s")) | T("x") | ((x | y | z) & ghij)
                | _if(has(x & y & z, "k") and _no_mix(x, y), T("k")))
    if frag is Fragment.THRESH:
        all_e = all_m = True
        args = num_s = 0
        acc = T("k")
        for i, t in enumerate(subs):
            if not has(t, "Wdu" if i else "Bdu"):
                return 0
            all_e = all_e and has(t, "e")
            all_m = all_m and has(t, "m")
            num_s += has(t, "s")
            args += 0 if has(t, "z") else 1 if has(t, "o") else 2
            acc = ((acc | t) & ghij) | _if(has(acc & t, "k") and (k <= 1 or _no_mix(acc, t)),
                                           T("k"))
        return (T("Bdu") | _if(args == 0, T("z")) | _if(args == 1, T("o"))
                | _if(all_e and num_s == n_subs, T("e"))
                | _if(all_e and all_m and num_s >= n_subs - k, T("m"))
                | _if(num_s >= n_subs - k + 1, T("s")) | acc)
    raise AssertionError(frag)


def _sanitize(t: int) -> int:
    """Core's SanitizeType: a type needs exactly one of B V K W."""
    return t if t & T("BVKW") else 0


# --- resource counting (Core's internal::MaxInt, Ops, SatInfo, StackSize) --------------------

class MaxInt:
    """A count that may be unavailable (no such satisfaction); | takes the larger."""

    __slots__ = ("valid", "value")

    def __init__(self, value: int | None = None) -> None:
        self.valid = value is not None
        self.value = value or 0

    def __add__(self, o: MaxInt) -> MaxInt:
        return MaxInt(self.value + o.value) if self.valid and o.valid else MaxInt()

    def __or__(self, o: MaxInt) -> MaxInt:
        if not self.valid:
            return o
        if not o.valid:
            return self
        return MaxInt(max(self.value, o.value))


@dataclass(frozen=True)
class Ops:
    count: int
    sat: MaxInt
    dsat: MaxInt


class SatInfo:
    """Stack-size information of a satisfaction: how much the stack may have grown at the
    start compared to the end (netdiff), and the most it grows while running (exec)."""

    __slots__ = ("valid", "netdiff", "exec")

    def __init__(self, netdiff: int | None = None, exec_: int = 0) -> None:
        self.valid = netdiff is not None
        self.netdiff = netdiff or 0
        self.exec = exec_

    def __add__(self, b: SatInfo) -> SatInfo:
        if not self.valid or not b.valid:
            return SatInfo()
        return SatInfo(self.netdiff + b.netdiff, max(b.exec, b.netdiff + self.exec))

    def __or__(self, b: SatInfo) -> SatInfo:
        if not self.valid:
            return b
        if not b.valid:
            return self
        return SatInfo(max(self.netdiff, b.netdiff), max(self.exec, b.exec))


def _si(netdiff: int, exec_: int) -> SatInfo:
    return SatInfo(netdiff, exec_)


EMPTY = _si(0, 0)
PUSH = _si(-1, 0)
HASH = _si(0, 0)
NOP = _si(0, 0)
IF = _si(1, 1)
BINARY = _si(1, 1)
DUP = _si(-1, 0)
EQUALVERIFY = _si(2, 2)
EQUAL = _si(1, 1)
SIZE = _si(-1, 0)
CHECKSIG = _si(1, 1)
NOTEQUAL0 = _si(0, 0)
VERIFY = _si(1, 1)


def _ifdup(nonzero: bool) -> SatInfo:
    return _si(-1 if nonzero else 0, 0)


@dataclass(frozen=True)
class StackSize:
    sat: SatInfo
    dsat: SatInfo


def _ss(sat: SatInfo, dsat: SatInfo | None = None) -> StackSize:
    return StackSize(sat, sat if dsat is None else dsat)


# --- nodes -----------------------------------------------------------------------------------

class KeyCtx:
    """What miniscript needs to know about keys."""

    def key_bytes(self, key: Any, ctx: MsContext) -> bytes:
        raise NotImplementedError

    def key_hash(self, key: Any, ctx: MsContext) -> bytes:
        raise NotImplementedError

    def key_string(self, key: Any) -> str | None:
        raise NotImplementedError

    def key_id(self, key: Any) -> Any:
        """What makes two keys the same key (duplicate-key check)."""
        return key

    def from_pk_bytes(self, data: bytes, ctx: MsContext) -> Any | None:
        raise NotImplementedError

    def from_pkh_bytes(self, data: bytes, ctx: MsContext) -> Any | None:
        raise NotImplementedError


class Node:
    """One miniscript fragment with its sub-expressions, keys, number k or hash data."""

    __slots__ = ("frag", "subs", "keys", "k", "data", "ctx", "type", "ops", "ss", "script_len",
                 "_kctx")

    def __init__(self, frag: Fragment, ctx: MsContext, kctx: KeyCtx,
                 subs: Sequence[Node] = (), keys: Sequence[Any] = (), k: int = 0,
                 data: bytes = b"") -> None:
        self.frag = frag
        self.subs = list(subs)
        self.keys = list(keys)
        self.k = k
        self.data = data
        self.ctx = ctx
        self._kctx = kctx
        sub_types = [s.type for s in self.subs]
        x = sub_types[0] if len(sub_types) > 0 else 0
        y = sub_types[1] if len(sub_types) > 1 else 0
        z = sub_types[2] if len(sub_types) > 2 else 0
        if any(t == 0 for t in sub_types):
            self.type = 0
        else:
            self.type = _sanitize(_compute_type(frag, x, y, z, sub_types, k, len(self.subs),
                                                len(self.keys), ctx))
        self.ops = self._calc_ops()
        self.ss = self._calc_stack_size()
        self.script_len = self._calc_script_len()

    # -- script --

    def to_script(self, kctx: KeyCtx | None = None) -> bytes:
        """The script; kctx (default: the one the node was made with) gives the key bytes."""
        return bytes(self._script(kctx or self._kctx))

    def _script(self, kc: KeyCtx) -> bytearray:
        f = self.frag
        out = bytearray()
        if f is Fragment.JUST_0:
            out.append(OP_0)
        elif f is Fragment.JUST_1:
            out.append(OP_1)
        elif f is Fragment.PK_K:
            out += push_data(kc.key_bytes(self.keys[0], self.ctx))
        elif f is Fragment.PK_H:
            out += bytes((OP_DUP, OP_HASH160)) + push_data(kc.key_hash(self.keys[0], self.ctx))
            out.append(OP_EQUALVERIFY)
        elif f is Fragment.OLDER:
            out += push_int(self.k) + bytes((OP_CHECKSEQUENCEVERIFY,))
        elif f is Fragment.AFTER:
            out += push_int(self.k) + bytes((OP_CHECKLOCKTIMEVERIFY,))
        elif f in _HASHES:
            op = {Fragment.SHA256: OP_SHA256, Fragment.HASH256: OP_HASH256,
                  Fragment.RIPEMD160: OP_RIPEMD160, Fragment.HASH160: OP_HASH160}[f]
            out += bytes((OP_SIZE,)) + push_int(32) + bytes((OP_EQUALVERIFY, op))
            out += push_data(self.data) + bytes((OP_EQUAL,))
        elif f is Fragment.MULTI:
            out += push_int(self.k)
            for key in self.keys:
                out += push_data(kc.key_bytes(key, self.ctx))
            out += push_int(len(self.keys)) + bytes((OP_CHECKMULTISIG,))
        elif f is Fragment.MULTI_A:
            for i, key in enumerate(self.keys):
                out += push_data(kc.key_bytes(key, self.ctx))
                out.append(OP_CHECKSIG if i == 0 else OP_CHECKSIGADD)
            out += push_int(self.k) + bytes((OP_NUMEQUAL,))
        elif f is Fragment.WRAP_A:
            out.append(OP_TOALTSTACK)
            out += self.subs[0]._script(kc)
            out.append(OP_FROMALTSTACK)
        elif f is Fragment.WRAP_S:
            out.append(OP_SWAP)
            out += self.subs[0]._script(kc)
        elif f is Fragment.WRAP_C:
            out += self.subs[0]._script(kc)
            out.append(OP_CHECKSIG)
        elif f is Fragment.WRAP_D:
            out += bytes((OP_DUP, OP_IF)) + self.subs[0]._script(kc) + bytes((OP_ENDIF,))
        elif f is Fragment.WRAP_V:
            sub = self.subs[0]._script(kc)
            last = sub[-1] if sub else None
            verify = {OP_EQUAL: OP_EQUALVERIFY, OP_NUMEQUAL: OP_NUMEQUALVERIFY,
                      OP_CHECKSIG: OP_CHECKSIGVERIFY, OP_CHECKMULTISIG: OP_CHECKMULTISIGVERIFY}
            if not has(self.subs[0].type, "x") and last in verify:
                sub[-1] = verify[last]
            else:
                sub.append(OP_VERIFY)
            out += sub
        elif f is Fragment.WRAP_J:
            out += bytes((OP_SIZE, OP_0NOTEQUAL, OP_IF)) + self.subs[0]._script(kc)
            out.append(OP_ENDIF)
        elif f is Fragment.WRAP_N:
            out += self.subs[0]._script(kc)
            out.append(OP_0NOTEQUAL)
        elif f is Fragment.AND_V:
            out += self.subs[0]._script(kc) + self.subs[1]._script(kc)
        elif f is Fragment.AND_B:
            out += self.subs[0]._script(kc) + self.subs[1]._script(kc)
            out.append(OP_BOOLAND)
        elif f is Fragment.OR_B:
            out += self.subs[0]._script(kc) + self.subs[1]._script(kc)
            out.append(OP_BOOLOR)
        elif f is Fragment.OR_D:
            out += self.subs[0]._script(kc) + bytes((OP_IFDUP, OP_NOTIF))
            out += self.subs[1]._script(kc) + bytes((OP_ENDIF,))
        elif f is Fragment.OR_C:
            out += self.subs[0]._script(kc) + bytes((OP_NOTIF,))
            out += self.subs[1]._script(kc) + bytes((OP_ENDIF,))
        elif f is Fragment.OR_I:
            out += bytes((OP_IF,)) + self.subs[0]._script(kc) + bytes((OP_ELSE,))
            out += self.subs[1]._script(kc) + bytes((OP_ENDIF,))
        elif f is Fragment.ANDOR:
            out += self.subs[0]._script(kc) + bytes((OP_NOTIF,)) + self.subs[2]._script(kc)
            out += bytes((OP_ELSE,)) + self.subs[1]._script(kc) + bytes((OP_ENDIF,))
        elif f is Fragment.THRESH:
            for i, s in enumerate(self.subs):
                out += s._script(kc)
                if i:
                    out.append(OP_ADD)
            out += push_int(self.k) + bytes((OP_EQUAL,))
        return out

    def _calc_script_len(self) -> int:
        """Core's ComputeScriptLen (without building the script)."""
        f = self.frag
        sub = sum(s.script_len for s in self.subs)
        tap = self.ctx is MsContext.TAPSCRIPT
        if f in (Fragment.JUST_0, Fragment.JUST_1):
            return 1
        if f is Fragment.PK_K:
            return 33 if tap else 34
        if f is Fragment.PK_H:
            return 3 + 21
        if f in (Fragment.OLDER, Fragment.AFTER):
            return 1 + len(push_int(self.k))
        if f in (Fragment.SHA256, Fragment.HASH256):
            return 4 + 2 + 33
        if f in (Fragment.RIPEMD160, Fragment.HASH160):
            return 4 + 2 + 21
        if f is Fragment.MULTI:
            return 1 + len(push_int(len(self.keys))) + len(push_int(self.k)) + 34 * len(self.keys)
        if f is Fragment.MULTI_A:
            return (1 + 32 + 1) * len(self.keys) + len(push_int(self.k)) + 1
        if f is Fragment.AND_V:
            return sub
        if f is Fragment.WRAP_V:
            return sub + has(self.subs[0].type, "x")
        if f in (Fragment.WRAP_S, Fragment.WRAP_C, Fragment.WRAP_N, Fragment.AND_B,
                 Fragment.OR_B):
            return sub + 1
        if f in (Fragment.WRAP_A, Fragment.OR_C):
            return sub + 2
        if f in (Fragment.WRAP_D, Fragment.OR_D, Fragment.OR_I, Fragment.ANDOR):
            return sub + 3
        if f is Fragment.WRAP_J:
            return sub + 4
        if f is Fragment.THRESH:
            return sub + len(self.subs) + len(push_int(self.k))
        raise AssertionError(f)

    # -- resources --

    def _calc_ops(self) -> Ops:
        f = self.frag
        s = [x.ops for x in self.subs]
        none = MaxInt()
        if f is Fragment.JUST_1:
            return Ops(0, MaxInt(0), none)
        if f is Fragment.JUST_0:
            return Ops(0, none, MaxInt(0))
        if f is Fragment.PK_K:
            return Ops(0, MaxInt(0), MaxInt(0))
        if f is Fragment.PK_H:
            return Ops(3, MaxInt(0), MaxInt(0))
        if f in (Fragment.OLDER, Fragment.AFTER):
            return Ops(1, MaxInt(0), none)
        if f in _HASHES:
            return Ops(4, MaxInt(0), none)
        if f is Fragment.AND_V:
            return Ops(s[0].count + s[1].count, s[0].sat + s[1].sat, none)
        if f is Fragment.AND_B:
            return Ops(1 + s[0].count + s[1].count, s[0].sat + s[1].sat, s[0].dsat + s[1].dsat)
        if f is Fragment.OR_B:
            return Ops(1 + s[0].count + s[1].count,
                       (s[0].sat + s[1].dsat) | (s[1].sat + s[0].dsat), s[0].dsat + s[1].dsat)
        if f is Fragment.OR_D:
            return Ops(3 + s[0].count + s[1].count, s[0].sat | (s[1].sat + s[0].dsat),
                       s[0].dsat + s[1].dsat)
        if f is Fragment.OR_C:
            return Ops(2 + s[0].count + s[1].count, s[0].sat | (s[1].sat + s[0].dsat), none)
        if f is Fragment.OR_I:
            return Ops(3 + s[0].count + s[1].count, s[0].sat | s[1].sat, s[0].dsat | s[1].dsat)
        if f is Fragment.ANDOR:
            return Ops(3 + s[0].count + s[1].count + s[2].count,
                       (s[1].sat + s[0].sat) | (s[0].dsat + s[2].sat), s[0].dsat + s[2].dsat)
        if f is Fragment.MULTI:
            n = len(self.keys)
            return Ops(1, MaxInt(n), MaxInt(n))
        if f is Fragment.MULTI_A:
            return Ops(len(self.keys) + 1, MaxInt(0), MaxInt(0))
        if f in (Fragment.WRAP_S, Fragment.WRAP_C, Fragment.WRAP_N):
            return Ops(1 + s[0].count, s[0].sat, s[0].dsat)
        if f is Fragment.WRAP_A:
            return Ops(2 + s[0].count, s[0].sat, s[0].dsat)
        if f is Fragment.WRAP_D:
            return Ops(3 + s[0].count, s[0].sat, MaxInt(0))
        if f is Fragment.WRAP_J:
            return Ops(4 + s[0].count, s[0].sat, MaxInt(0))
        if f is Fragment.WRAP_V:
            return Ops(s[0].count + has(self.subs[0].type, "x"), s[0].sat, none)
        if f is Fragment.THRESH:
            count = 0
            sats = [MaxInt(0)]
            for sub in s:
                count += sub.count + 1
                nxt = [sats[0] + sub.dsat]
                for j in range(1, len(sats)):
                    nxt.append((sats[j] + sub.dsat) | (sats[j - 1] + sub.sat))
                nxt.append(sats[-1] + sub.sat)
                sats = nxt
            return Ops(count, sats[self.k] if self.k < len(sats) else none, sats[0])
        raise AssertionError(f)

    def _calc_stack_size(self) -> StackSize:
        f = self.frag
        s = [x.ss for x in self.subs]
        none = SatInfo()
        if f is Fragment.JUST_0:
            return _ss(none, PUSH)
        if f is Fragment.JUST_1:
            return _ss(PUSH, none)
        if f in (Fragment.OLDER, Fragment.AFTER):
            return _ss(PUSH + NOP, none)
        if f is Fragment.PK_K:
            return _ss(PUSH)
        if f is Fragment.PK_H:
            return _ss(DUP + HASH + PUSH + EQUALVERIFY)
        if f in _HASHES:
            return _ss(SIZE + PUSH + EQUALVERIFY + HASH + PUSH + EQUAL, none)
        if f is Fragment.ANDOR:
            x, y, z = s
            return _ss((x.sat + IF + y.sat) | (x.dsat + IF + z.sat), x.dsat + IF + z.dsat)
        if f is Fragment.AND_V:
            return _ss(s[0].sat + s[1].sat, none)
        if f is Fragment.AND_B:
            return _ss(s[0].sat + s[1].sat + BINARY, s[0].dsat + s[1].dsat + BINARY)
        if f is Fragment.OR_B:
            x, y = s
            return _ss(((x.sat + y.dsat) | (x.dsat + y.sat)) + BINARY, x.dsat + y.dsat + BINARY)
        if f is Fragment.OR_C:
            x, y = s
            return _ss((x.sat + IF) | (x.dsat + IF + y.sat), none)
        if f is Fragment.OR_D:
            x, y = s
            return _ss((x.sat + _ifdup(True) + IF) | (x.dsat + _ifdup(False) + IF + y.sat),
                       x.dsat + _ifdup(False) + IF + y.dsat)
        if f is Fragment.OR_I:
            x, y = s
            return _ss(IF + (x.sat | y.sat), IF + (x.dsat | y.dsat))
        if f is Fragment.MULTI:
            return _ss(_si(self.k, self.k + len(self.keys) + 2))
        if f is Fragment.MULTI_A:
            return _ss(_si(len(self.keys) - 1, len(self.keys)))
        if f in (Fragment.WRAP_A, Fragment.WRAP_N, Fragment.WRAP_S):
            return s[0]
        if f is Fragment.WRAP_C:
            return _ss(s[0].sat + CHECKSIG, s[0].dsat + CHECKSIG)
        if f is Fragment.WRAP_D:
            return _ss(DUP + IF + s[0].sat, DUP + IF)
        if f is Fragment.WRAP_V:
            return _ss(s[0].sat + VERIFY, none)
        if f is Fragment.WRAP_J:
            return _ss(SIZE + NOTEQUAL0 + IF + s[0].sat, SIZE + NOTEQUAL0 + IF)
        if f is Fragment.THRESH:
            sats = [EMPTY]
            for i, sub in enumerate(s):
                add = BINARY if i else EMPTY
                nxt = [sats[0] + sub.dsat + add]
                for j in range(1, len(sats)):
                    nxt.append(((sats[j] + sub.dsat) | (sats[j - 1] + sub.sat)) + add)
                nxt.append(sats[-1] + sub.sat + add)
                sats = nxt
            sat = sats[self.k] if self.k < len(sats) else none
            return _ss(sat + PUSH + EQUAL, sats[0] + PUSH + EQUAL)
        raise AssertionError(f)

    # -- checks (Core's IsSane and friends) --

    def is_valid(self) -> bool:
        if self.type == 0:
            return False
        if self.ctx is MsContext.P2WSH:
            return self.script_len <= MAX_STANDARD_P2WSH_SCRIPT_SIZE
        return True

    def is_valid_top_level(self) -> bool:
        return self.is_valid() and has(self.type, "B")

    def _bkw(self) -> int:
        return 1 if self.type & T("BKW") else 0

    def check_ops_limit(self) -> bool:
        if self.ctx is MsContext.TAPSCRIPT or not self.ops.sat.valid:
            return True
        return self.ops.count + self.ops.sat.value <= MAX_OPS_PER_SCRIPT

    def check_stack_size(self) -> bool:
        if not self.ss.sat.valid:
            return True
        if self.ctx is MsContext.TAPSCRIPT:
            return self.ss.sat.exec + self._bkw() <= MAX_STACK_SIZE
        return self.ss.sat.netdiff + self._bkw() <= MAX_STANDARD_P2WSH_STACK_ITEMS

    def all_keys(self) -> list[Any]:
        out = list(self.keys)
        for s in self.subs:
            out += s.all_keys()
        return out

    def has_duplicate_keys(self) -> bool:
        ids = [self._kctx.key_id(k) for k in self.all_keys()]
        return len(ids) != len(set(ids))

    def valid_satisfactions(self) -> bool:
        return self.is_valid() and self.check_ops_limit() and self.check_stack_size()

    def is_sane_subexpression(self) -> bool:
        return (self.valid_satisfactions() and has(self.type, "m") and has(self.type, "k")
                and not self.has_duplicate_keys())

    def is_not_satisfiable(self) -> bool:
        return not self.ss.sat.valid

    def find_insane_sub(self) -> Node | None:
        """Core's FindInsaneSub: a node that is not a sane subexpression while all of its
        children are (the first such, depth first)."""
        for sub in self.subs:
            found = sub.find_insane_sub()
            if found is not None:
                return found
        return None if self.is_sane_subexpression() else self

    def sanity_error(self, kctx: KeyCtx | None = None) -> str | None:
        """The message Core's descriptor parser gives for a miniscript that is not sane or
        not satisfiable; None when it is fine."""
        if self.is_sane() and not self.is_not_satisfiable():
            return None
        insane = self.find_insane_sub() or self
        text = insane.to_string(kctx) or ""
        if not insane.is_valid():
            return text + " is invalid"
        if not self.is_sane():
            text += " is not sane"
            if not has(insane.type, "m"):
                return text + ": malleable witnesses exist"
            if insane is self and not has(insane.type, "s"):
                return text + ": witnesses without signature exist"
            if not has(insane.type, "k"):
                return text + ": contains mixes of timelocks expressed in blocks and seconds"
            if insane.has_duplicate_keys():
                return text + ": contains duplicate public keys"
            if not insane.valid_satisfactions():
                return text + ": needs witnesses that may exceed resource limits"
            return text
        return text + " is not satisfiable"

    def is_sane(self) -> bool:
        return (self.is_valid_top_level() and self.check_ops_limit() and self.check_stack_size()
                and has(self.type, "m") and has(self.type, "k")
                and not self.has_duplicate_keys() and has(self.type, "s"))

    # -- text --

    def to_string(self, kctx: KeyCtx | None = None, wrapped: bool = False) -> str | None:
        """Core's ToString: wrappers as letters before ':', and its syntactic sugar."""
        f, subs = self.frag, self.subs
        kc = kctx or self._kctx
        ret = ":" if wrapped else ""
        wraps_children = (f in _WRAPPERS
                          or (f is Fragment.AND_V and subs[1].frag is Fragment.JUST_1)
                          or (f is Fragment.OR_I and (subs[0].frag is Fragment.JUST_0
                                                      or subs[1].frag is Fragment.JUST_0)))
        strs: list[str] = []
        for sub in subs:
            text = sub.to_string(kc, wraps_children)
            if text is None:
                return None
            strs.append(text)
        if f is Fragment.WRAP_C and subs[0].frag in (Fragment.PK_K, Fragment.PK_H):
            key = kc.key_string(subs[0].keys[0])
            if key is None:
                return None
            return ret + ("pk(" if subs[0].frag is Fragment.PK_K else "pkh(") + key + ")"
        if f in _WRAPPERS:
            return f.value + strs[0]
        if f is Fragment.AND_V and subs[1].frag is Fragment.JUST_1:
            return "t" + strs[0]
        if f is Fragment.OR_I and subs[0].frag is Fragment.JUST_0:
            return "l" + strs[1]
        if f is Fragment.OR_I and subs[1].frag is Fragment.JUST_0:
            return "u" + strs[0]
        if f in (Fragment.PK_K, Fragment.PK_H):
            key = kc.key_string(self.keys[0])
            return None if key is None else f"{ret}{f.value}({key})"
        if f in (Fragment.OLDER, Fragment.AFTER):
            return f"{ret}{f.value}({self.k})"
        if f in _HASHES:
            return f"{ret}{f.value}({self.data.hex()})"
        if f in (Fragment.JUST_0, Fragment.JUST_1):
            return ret + f.value
        if f is Fragment.ANDOR and subs[2].frag is Fragment.JUST_0:
            return f"{ret}and_n({strs[0]},{strs[1]})"
        if f in (Fragment.MULTI, Fragment.MULTI_A):
            keys = [kc.key_string(k) for k in self.keys]
            if any(k is None for k in keys):
                return None
            return f"{ret}{f.value}({self.k},{','.join(keys)})"  # type: ignore[arg-type]
        if f is Fragment.THRESH:
            return f"{ret}thresh({self.k},{','.join(strs)})"
        return f"{ret}{f.value}({','.join(strs)})"


# --- decoding a script (Core's DecomposeScript / DecodeScript) -------------------------------

_VERIFY_SPLIT = {OP_CHECKSIGVERIFY: OP_CHECKSIG, OP_CHECKMULTISIGVERIFY: OP_CHECKMULTISIG,
                 OP_EQUALVERIFY: OP_EQUAL, OP_NUMEQUALVERIFY: OP_NUMEQUAL}


def _decompose(script: bytes) -> list[tuple[int, bytes]] | None:
    """The script's operations, last first, with the VERIFY forms split in two and OP_n
    as one-byte pushes; None if it does not parse or pushes anything non-minimally."""
    out: list[tuple[int, bytes]] = []
    pc = 0
    end = len(script)
    while pc < end:
        try:
            op, data, pc = get_op(script, pc)
        except ScriptParseError:
            return None
        if OP_1 <= op <= OP_16:
            data = bytes((op - OP_1 + 1,))
        elif op in _VERIFY_SPLIT:
            out.append((_VERIFY_SPLIT[op], b""))
            op, data = OP_VERIFY, b""
        elif OP_0 < op <= OP_PUSHDATA4:
            assert data is not None
            if not is_minimal_push(data, op):
                return None
        elif (pc < end and op in (OP_CHECKSIG, OP_CHECKMULTISIG, OP_EQUAL, OP_NUMEQUAL)
              and script[pc] == OP_VERIFY):
            return None  # a VERIFY that should have been merged into the opcode
        out.append((op, data or b""))
    out.reverse()
    return out


def _script_number(tok: tuple[int, bytes]) -> int | None:
    op, data = tok
    if op == OP_0:
        return 0
    if not data:
        return None
    if OP_0 < op <= OP_PUSHDATA4 and not is_minimal_push(data, op):
        return None
    try:
        return decode_num(data, True)
    except ScriptError:
        return None


def from_script(script: bytes, ctx: MsContext, kctx: KeyCtx) -> Node | None:
    """Core's miniscript::FromScript: the miniscript whose script this is, or None."""
    toks = _decompose(script)
    if toks is None:
        return None
    return _Decoder(toks, ctx, kctx).run()


class _Decoder:
    def __init__(self, toks: list[tuple[int, bytes]], ctx: MsContext, kctx: KeyCtx) -> None:
        self.t = toks
        self.i = 0
        self.ctx = ctx
        self.kctx = kctx

    def left(self) -> int:
        return len(self.t) - self.i

    def op(self, j: int = 0) -> int:
        return self.t[self.i + j][0]

    def data(self, j: int = 0) -> bytes:
        return self.t[self.i + j][1]

    def node(self, frag: Fragment, subs: Sequence[Node] = (), keys: Sequence[Any] = (),
             k: int = 0, data: bytes = b"") -> Node:
        return Node(frag, self.ctx, self.kctx, subs, keys, k, data)

    def run(self) -> Node | None:  # noqa: C901 - one state machine, as Core's
        todo: list[tuple[str, int, int]] = [("BKV", -1, -1)]
        built: list[Node] = []
        tap = self.ctx is MsContext.TAPSCRIPT
        while todo:
            if built and not built[-1].is_valid():
                return None
            state, n, k = todo.pop()
            if state == "SINGLE":
                if self.left() <= 0:
                    return None
                op, data = self.op(), self.data()
                if op == OP_1:
                    self.i += 1
                    built.append(self.node(Fragment.JUST_1))
                    continue
                if op == OP_0:
                    self.i += 1
                    built.append(self.node(Fragment.JUST_0))
                    continue
                if len(data) in (32, 33):
                    key = self.kctx.from_pk_bytes(data, self.ctx)
                    if key is None:
                        return None
                    self.i += 1
                    built.append(self.node(Fragment.PK_K, keys=[key]))
                    continue
                if (self.left() >= 5 and op == OP_VERIFY and self.op(1) == OP_EQUAL
                        and self.op(3) == OP_HASH160 and self.op(4) == OP_DUP
                        and len(self.data(2)) == 20):
                    key = self.kctx.from_pkh_bytes(self.data(2), self.ctx)
                    if key is None:
                        return None
                    self.i += 5
                    built.append(self.node(Fragment.PK_H, keys=[key]))
                    continue
                if self.left() >= 2 and op in (OP_CHECKSEQUENCEVERIFY, OP_CHECKLOCKTIMEVERIFY):
                    num = _script_number(self.t[self.i + 1])
                    if num is not None:
                        self.i += 2
                        if not 1 <= num <= 0x7FFFFFFF:
                            return None
                        frag = Fragment.OLDER if op == OP_CHECKSEQUENCEVERIFY else (
                            Fragment.AFTER)
                        built.append(self.node(frag, k=num))
                        continue
                if (self.left() >= 7 and op == OP_EQUAL and self.op(3) == OP_VERIFY
                        and self.op(4) == OP_EQUAL and _script_number(self.t[self.i + 5]) == 32
                        and self.op(6) == OP_SIZE):
                    hop, h = self.op(2), self.data(1)
                    frag = {(OP_SHA256, 32): Fragment.SHA256, (OP_RIPEMD160, 20):
                            Fragment.RIPEMD160, (OP_HASH256, 32): Fragment.HASH256,
                            (OP_HASH160, 20): Fragment.HASH160}.get((hop, len(h)))
                    if frag is not None:
                        built.append(self.node(frag, data=h))
                        self.i += 7
                        continue
                if self.left() >= 3 and op == OP_CHECKMULTISIG:
                    if tap:
                        return None
                    nkeys = _script_number(self.t[self.i + 1])
                    if nkeys is None or self.left() < 3 + nkeys or not 1 <= nkeys <= 20:
                        return None
                    keys = []
                    for j in range(nkeys):
                        kd = self.data(2 + j)
                        if len(kd) != 33:
                            return None
                        key = self.kctx.from_pk_bytes(kd, self.ctx)
                        if key is None:
                            return None
                        keys.append(key)
                    kk = _script_number(self.t[self.i + 2 + nkeys])
                    if kk is None or not 1 <= kk <= nkeys:
                        return None
                    self.i += 3 + nkeys
                    keys.reverse()
                    built.append(self.node(Fragment.MULTI, keys=keys, k=kk))
                    continue
                if self.left() >= 4 and op == OP_NUMEQUAL:
                    if not tap:
                        return None
                    kk = _script_number(self.t[self.i + 1])
                    if kk is None or not 1 <= kk <= MAX_PUBKEYS_PER_MULTI_A:
                        return None
                    if self.left() < 2 + kk * 2:
                        return None
                    keys = []
                    pos = 2
                    while True:
                        if self.left() < pos + 2:
                            return None
                        if self.op(pos) not in (OP_CHECKSIGADD, OP_CHECKSIG):
                            return None
                        if len(self.data(pos + 1)) != 32:
                            return None
                        key = self.kctx.from_pk_bytes(self.data(pos + 1), self.ctx)
                        if key is None:
                            return None
                        keys.append(key)
                        if len(keys) > MAX_PUBKEYS_PER_MULTI_A:
                            return None
                        if self.op(pos) == OP_CHECKSIG:
                            break
                        pos += 2
                    if len(keys) < kk:
                        return None
                    self.i += 2 + len(keys) * 2
                    keys.reverse()
                    built.append(self.node(Fragment.MULTI_A, keys=keys, k=kk))
                    continue
                if op == OP_CHECKSIG:
                    self.i += 1
                    todo += [("CHECK", -1, -1), ("SINGLE", -1, -1)]
                    continue
                if op == OP_VERIFY:
                    self.i += 1
                    todo += [("VERIFY", -1, -1), ("SINGLE", -1, -1)]
                    continue
                if op == OP_0NOTEQUAL:
                    self.i += 1
                    todo += [("ZERO_NOTEQUAL", -1, -1), ("SINGLE", -1, -1)]
                    continue
                if self.left() >= 3 and op == OP_EQUAL:
                    num = _script_number(self.t[self.i + 1])
                    if num is not None:
                        if num < 1:
                            return None
                        self.i += 2
                        todo.append(("THRESH_W", 0, num))
                        continue
                if op == OP_ENDIF:
                    self.i += 1
                    todo += [("ENDIF", -1, -1), ("BKV", -1, -1)]
                    continue
                if op == OP_BOOLAND:
                    self.i += 1
                    todo += [("AND_B", -1, -1), ("SINGLE", -1, -1), ("W", -1, -1)]
                    continue
                if op == OP_BOOLOR:
                    self.i += 1
                    todo += [("OR_B", -1, -1), ("SINGLE", -1, -1), ("W", -1, -1)]
                    continue
                return None
            if state == "BKV":
                todo += [("MAYBE_AND_V", -1, -1), ("SINGLE", -1, -1)]
            elif state == "W":
                if self.left() <= 0:
                    return None
                if self.op() == OP_FROMALTSTACK:
                    self.i += 1
                    todo.append(("ALT", -1, -1))
                else:
                    todo.append(("SWAP", -1, -1))
                todo.append(("BKV", -1, -1))
            elif state == "MAYBE_AND_V":
                if self.left() > 0 and self.op() not in (OP_IF, OP_ELSE, OP_NOTIF,
                                                         OP_TOALTSTACK, OP_SWAP):
                    todo += [("AND_V", -1, -1), ("BKV", -1, -1)]
            elif state in ("SWAP", "ALT"):
                want = OP_SWAP if state == "SWAP" else OP_TOALTSTACK
                if self.left() <= 0 or self.op() != want or not built:
                    return None
                self.i += 1
                frag = Fragment.WRAP_S if state == "SWAP" else Fragment.WRAP_A
                built[-1] = self.node(frag, [built[-1]])
            elif state in ("CHECK", "DUP_IF", "VERIFY", "NON_ZERO", "ZERO_NOTEQUAL"):
                if not built:
                    return None
                frag = {"CHECK": Fragment.WRAP_C, "DUP_IF": Fragment.WRAP_D,
                        "VERIFY": Fragment.WRAP_V, "NON_ZERO": Fragment.WRAP_J,
                        "ZERO_NOTEQUAL": Fragment.WRAP_N}[state]
                built[-1] = self.node(frag, [built[-1]])
            elif state in ("AND_V", "AND_B", "OR_B", "OR_C", "OR_D"):
                if len(built) < 2:
                    return None
                child = built.pop()
                built[-1] = self.node(Fragment[state], [child, built[-1]])
            elif state == "ANDOR":
                if len(built) < 3:
                    return None
                left = built.pop()
                right = built.pop()
                mid = built[-1]
                built[-1] = self.node(Fragment.ANDOR, [left, mid, right])
            elif state == "THRESH_W":
                if self.left() <= 0:
                    return None
                if self.op() == OP_ADD:
                    self.i += 1
                    todo += [("THRESH_W", n + 1, k), ("W", -1, -1)]
                else:
                    todo += [("THRESH_E", n + 1, k), ("SINGLE", -1, -1)]
            elif state == "THRESH_E":
                if k < 1 or k > n or len(built) < n:
                    return None
                subs = [built.pop() for _ in range(n)]
                built.append(self.node(Fragment.THRESH, subs, k=k))
            elif state == "ENDIF":
                if self.left() <= 0:
                    return None
                op = self.op()
                if op == OP_ELSE:
                    self.i += 1
                    todo += [("ENDIF_ELSE", -1, -1), ("BKV", -1, -1)]
                elif op == OP_IF:
                    if self.left() >= 2 and self.op(1) == OP_DUP:
                        self.i += 2
                        todo.append(("DUP_IF", -1, -1))
                    elif (self.left() >= 3 and self.op(1) == OP_0NOTEQUAL
                          and self.op(2) == OP_SIZE):
                        self.i += 3
                        todo.append(("NON_ZERO", -1, -1))
                    else:
                        return None
                elif op == OP_NOTIF:
                    self.i += 1
                    todo.append(("ENDIF_NOTIF", -1, -1))
                else:
                    return None
            elif state == "ENDIF_NOTIF":
                if self.left() <= 0:
                    return None
                if self.op() == OP_IFDUP:
                    self.i += 1
                    todo.append(("OR_D", -1, -1))
                else:
                    todo.append(("OR_C", -1, -1))
                todo.append(("SINGLE", -1, -1))
            elif state == "ENDIF_ELSE":
                if self.left() <= 0:
                    return None
                if self.op() == OP_IF:
                    self.i += 1
                    if len(built) < 2:
                        return None
                    child = built.pop()
                    built[-1] = self.node(Fragment.OR_I, [child, built[-1]])
                elif self.op() == OP_NOTIF:
                    self.i += 1
                    todo += [("ANDOR", -1, -1), ("SINGLE", -1, -1)]
                else:
                    return None
        if len(built) != 1:
            return None
        top = built[0]
        if not top.is_valid_top_level():
            return None
        return top


# --- parsing the string form (Core's miniscript::internal::Parse) ------------------------------

class MiniscriptParseError(ValueError):
    pass


def parse(text: str, ctx: MsContext, kctx: KeyCtx,
          parse_key: Callable[[str], Any]) -> Node:
    """The miniscript written in text (keys through parse_key, which raises on a bad key).
    Raises MiniscriptParseError when it is not valid miniscript."""
    node, rest = _parse_expr(text, ctx, kctx, parse_key)
    if rest:
        raise MiniscriptParseError(f"unexpected '{rest}'")
    if node.type == 0:
        raise MiniscriptParseError("invalid type")
    return node


def _split_args(text: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


def _parse_int(s: str) -> int:
    if not s or not s.isdigit() or (len(s) > 1 and s[0] == "0"):
        raise MiniscriptParseError(f"invalid number '{s}'")
    v = int(s)
    if v > 0x7FFFFFFF:
        raise MiniscriptParseError(f"number out of range '{s}'")
    return v


def _parse_expr(text: str, ctx: MsContext, kctx: KeyCtx,
                parse_key: Callable[[str], Any]) -> tuple[Node, str]:
    """One expression at the start of text (up to the matching ')' or a ',' at depth 0)."""
    depth = 0
    end = len(text)
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                end = i
                break
            depth -= 1
        elif c == "," and depth == 0:
            end = i
            break
    expr, rest = text[:end], text[end:]
    return _parse_one(expr, ctx, kctx, parse_key), rest


def _parse_one(expr: str, ctx: MsContext, kctx: KeyCtx,  # noqa: C901
               parse_key: Callable[[str], Any]) -> Node:
    def mk(frag: Fragment, subs: Sequence[Node] = (), keys: Sequence[Any] = (), k: int = 0,
           data: bytes = b"") -> Node:
        return Node(frag, ctx, kctx, subs, keys, k, data)

    colon = expr.find(":")
    paren = expr.find("(")
    if colon > 0 and (paren < 0 or colon < paren):
        wrappers, inner = expr[:colon], expr[colon + 1:]
        if not wrappers.isalpha():
            raise MiniscriptParseError(f"invalid wrappers '{wrappers}'")
        node = _parse_one(inner, ctx, kctx, parse_key)
        for w in reversed(wrappers):
            if w in "asdvjnc":
                node = mk(Fragment(w), [node])
            elif w == "t":
                node = mk(Fragment.AND_V, [node, mk(Fragment.JUST_1)])
            elif w == "u":
                node = mk(Fragment.OR_I, [node, mk(Fragment.JUST_0)])
            elif w == "l":
                node = mk(Fragment.OR_I, [mk(Fragment.JUST_0), node])
            else:
                raise MiniscriptParseError(f"invalid wrapper '{w}'")
        return node
    if expr == "0":
        return mk(Fragment.JUST_0)
    if expr == "1":
        return mk(Fragment.JUST_1)
    if paren <= 0 or not expr.endswith(")"):
        raise MiniscriptParseError(f"'{expr}' is not a valid miniscript expression")
    name, args_text = expr[:paren], expr[paren + 1:-1]
    args = _split_args(args_text)
    if name in ("pk", "pkh", "pk_k", "pk_h"):
        if len(args) != 1:
            raise MiniscriptParseError(f"{name} takes one key")
        key = parse_key(args[0])
        if name in ("pk_k", "pk"):
            node = mk(Fragment.PK_K, keys=[key])
        else:
            node = mk(Fragment.PK_H, keys=[key])
        return mk(Fragment.WRAP_C, [node]) if name in ("pk", "pkh") else node
    if name in ("older", "after"):
        if len(args) != 1:
            raise MiniscriptParseError(f"{name} takes one number")
        k = _parse_int(args[0])
        if k < 1:
            raise MiniscriptParseError(f"{name}() needs a number of at least 1")
        return mk(Fragment.OLDER if name == "older" else Fragment.AFTER, k=k)
    for frag, size in _HASHES.items():
        if name == frag.value:
            if len(args) != 1 or len(args[0]) != 2 * size:
                raise MiniscriptParseError(f"{name} takes a {size}-byte hash")
            try:
                h = bytes.fromhex(args[0])
            except ValueError:
                raise MiniscriptParseError(f"{name} takes a hex hash") from None
            return mk(frag, data=h)
    if name in ("multi", "multi_a"):
        if len(args) < 2:
            raise MiniscriptParseError(f"{name} takes a threshold and keys")
        k = _parse_int(args[0])
        keys = [parse_key(a) for a in args[1:]]
        frag = Fragment.MULTI if name == "multi" else Fragment.MULTI_A
        return mk(frag, keys=keys, k=k)
    if name == "thresh":
        if len(args) < 2:
            raise MiniscriptParseError("thresh takes a threshold and expressions")
        k = _parse_int(args[0])
        return mk(Fragment.THRESH, [_parse_whole(a, ctx, kctx, parse_key) for a in args[1:]],
                  k=k)
    two = {"and_v": Fragment.AND_V, "and_b": Fragment.AND_B, "or_b": Fragment.OR_B,
           "or_c": Fragment.OR_C, "or_d": Fragment.OR_D, "or_i": Fragment.OR_I}
    if name in two or name == "and_n":
        if len(args) != 2:
            raise MiniscriptParseError(f"{name} takes two expressions")
        subs = [_parse_whole(a, ctx, kctx, parse_key) for a in args]
        if name == "and_n":
            return mk(Fragment.ANDOR, [subs[0], subs[1], mk(Fragment.JUST_0)])
        return mk(two[name], subs)
    if name == "andor":
        if len(args) != 3:
            raise MiniscriptParseError("andor takes three expressions")
        return mk(Fragment.ANDOR, [_parse_whole(a, ctx, kctx, parse_key) for a in args])
    raise MiniscriptParseError(f"'{name}' is not a valid miniscript fragment")


def _parse_whole(text: str, ctx: MsContext, kctx: KeyCtx,
                 parse_key: Callable[[str], Any]) -> Node:
    node, rest = _parse_expr(text, ctx, kctx, parse_key)
    if rest:
        raise MiniscriptParseError(f"unexpected '{rest}'")
    return node


__all__ = ["Fragment", "KeyCtx", "MiniscriptParseError", "MsContext", "Node", "from_script",
           "parse", "encode_num", "type_string"]
