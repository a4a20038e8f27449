"""Esplora's JSON forms of scripts, transactions, blocks and statuses, field for field as
Blockstream's electrs writes them (its rest.rs): scripts in rust-bitcoin's asm ("OP_0
OP_PUSHBYTES_20 <hex>"), script types "v0_p2wpkh", "v1_p2tr", ..., amounts in satoshis."""

from __future__ import annotations

from functools import lru_cache

from consensus.params import ChainParams
from consensus.tx import Transaction, TxOut
from node.rpc.txjson import difficulty
from wallet.address import script_to_address

_NAMES = {
    0x4c: "OP_PUSHDATA1", 0x4d: "OP_PUSHDATA2", 0x4e: "OP_PUSHDATA4", 0x4f: "OP_PUSHNUM_NEG1",
    0x50: "OP_RESERVED", 0x61: "OP_NOP", 0x62: "OP_VER", 0x63: "OP_IF", 0x64: "OP_NOTIF",
    0x65: "OP_VERIF", 0x66: "OP_VERNOTIF", 0x67: "OP_ELSE", 0x68: "OP_ENDIF",
    0x69: "OP_VERIFY", 0x6a: "OP_RETURN", 0x6b: "OP_TOALTSTACK", 0x6c: "OP_FROMALTSTACK",
    0x6d: "OP_2DROP", 0x6e: "OP_2DUP", 0x6f: "OP_3DUP", 0x70: "OP_2OVER", 0x71: "OP_2ROT",
    0x72: "OP_2SWAP", 0x73: "OP_IFDUP", 0x74: "OP_DEPTH", 0x75: "OP_DROP", 0x76: "OP_DUP",
    0x77: "OP_NIP", 0x78: "OP_OVER", 0x79: "OP_PICK", 0x7a: "OP_ROLL", 0x7b: "OP_ROT",
    0x7c: "OP_SWAP", 0x7d: "OP_TUCK", 0x7e: "OP_CAT", 0x7f: "OP_SUBSTR", 0x80: "OP_LEFT",
    0x81: "OP_RIGHT", 0x82: "OP_SIZE", 0x83: "OP_INVERT", 0x84: "OP_AND", 0x85: "OP_OR",
    0x86: "OP_XOR", 0x87: "OP_EQUAL", 0x88: "OP_EQUALVERIFY", 0x89: "OP_RESERVED1",
    0x8a: "OP_RESERVED2", 0x8b: "OP_1ADD", 0x8c: "OP_1SUB", 0x8d: "OP_2MUL", 0x8e: "OP_2DIV",
    0x8f: "OP_NEGATE", 0x90: "OP_ABS", 0x91: "OP_NOT", 0x92: "OP_0NOTEQUAL", 0x93: "OP_ADD",
    0x94: "OP_SUB", 0x95: "OP_MUL", 0x96: "OP_DIV", 0x97: "OP_MOD", 0x98: "OP_LSHIFT",
    0x99: "OP_RSHIFT", 0x9a: "OP_BOOLAND", 0x9b: "OP_BOOLOR", 0x9c: "OP_NUMEQUAL",
    0x9d: "OP_NUMEQUALVERIFY", 0x9e: "OP_NUMNOTEQUAL", 0x9f: "OP_LESSTHAN",
    0xa0: "OP_GREATERTHAN", 0xa1: "OP_LESSTHANOREQUAL", 0xa2: "OP_GREATERTHANOREQUAL",
    0xa3: "OP_MIN", 0xa4: "OP_MAX", 0xa5: "OP_WITHIN", 0xa6: "OP_RIPEMD160", 0xa7: "OP_SHA1",
    0xa8: "OP_SHA256", 0xa9: "OP_HASH160", 0xaa: "OP_HASH256", 0xab: "OP_CODESEPARATOR",
    0xac: "OP_CHECKSIG", 0xad: "OP_CHECKSIGVERIFY", 0xae: "OP_CHECKMULTISIG",
    0xaf: "OP_CHECKMULTISIGVERIFY", 0xb1: "OP_CLTV", 0xb2: "OP_CSV", 0xba: "OP_CHECKSIGADD",
    0xff: "OP_INVALIDOPCODE",
}


def _opname(op: int) -> str:
    if op == 0:
        return "OP_0"
    if op <= 75:
        return f"OP_PUSHBYTES_{op}"
    if 0x51 <= op <= 0x60:
        return f"OP_PUSHNUM_{op - 0x50}"
    if op == 0xb0 or 0xb3 <= op <= 0xb9:
        return f"OP_NOP{op - 0xaf}"
    name = _NAMES.get(op)
    return name if name is not None else f"OP_RETURN_{op}"


@lru_cache(maxsize=65536)
def script_asm(script: bytes) -> str:
    """rust-bitcoin's Script asm, as Esplora shows scripts."""
    out: list[str] = []
    i, n = 0, len(script)
    while i < n:
        op = script[i]
        i += 1
        size = 0
        if 0 < op <= 75:
            size = op
        elif op in (0x4c, 0x4d, 0x4e):
            width = {0x4c: 1, 0x4d: 2, 0x4e: 4}[op]
            if i + width > n:  # (written where the next separator would go, as theirs)
                if out:
                    out[-1] += "<unexpected end>"
                else:
                    out.append("<unexpected end>")
                break
            size = int.from_bytes(script[i:i + width], "little")
            i += width
        word = _opname(op)
        if size:
            if i + size > n:
                out.append(f"{word} <push past end>")
                break
            word = f"{word} {script[i:i + size].hex()}"
            i += size
        out.append(word)
    return " ".join(out)


def script_type(script: bytes) -> str:
    n = len(script)
    if n == 0:
        return "empty"
    if script[0] == 0x6a:
        return "op_return"
    if (n == 35 and script[0] == 33 or n == 67 and script[0] == 65) and script[-1] == 0xac:
        return "p2pk"
    if n == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return "p2pkh"
    if n == 23 and script[:2] == b"\xa9\x14" and script[22] == 0x87:
        return "p2sh"
    if n == 22 and script[:2] == b"\x00\x14":
        return "v0_p2wpkh"
    if n == 34 and script[:2] == b"\x00\x20":
        return "v0_p2wsh"
    if n == 34 and script[:2] == b"\x51\x20":
        return "v1_p2tr"
    return "unknown"


@lru_cache(maxsize=65536)
def _address(script: bytes, params: ChainParams) -> str | None:
    return script_to_address(script, params)


def txout_json(out: TxOut, params: ChainParams) -> dict:
    script = out.script_pubkey
    d = {"scriptpubkey": script.hex(), "scriptpubkey_asm": script_asm(script),
         "scriptpubkey_type": script_type(script)}
    addr = _address(script, params)
    if addr is not None:
        d["scriptpubkey_address"] = addr
    d["value"] = out.value
    return d


def _last_push(script: bytes) -> bytes | None:
    """The data of the script's last instruction if it is a push (rust-bitcoin's
    instructions().last() as PushBytes), else None."""
    i, n = 0, len(script)
    last = None
    while i < n:
        op = script[i]
        i += 1
        if op <= 0x4e:
            size = op
            if op in (0x4c, 0x4d, 0x4e):
                width = {0x4c: 1, 0x4d: 2, 0x4e: 4}[op]
                if i + width > n:
                    return None
                size = int.from_bytes(script[i:i + width], "little")
                i += width
            if i + size > n:
                return None
            last = script[i:i + size]
            i += size
        else:
            last = None
    return last


def status_json(block) -> dict:
    """A transaction's status: `block` is the index entry of its block in the best chain, or
    None (unconfirmed)."""
    if block is None:
        return {"confirmed": False}
    return {"confirmed": True, "block_height": block.height,
            "block_hash": block.hash[::-1].hex(), "block_time": block.time}


def tx_json(tx: Transaction, prevouts: list[TxOut | None], params: ChainParams,
            status: dict | None) -> dict:
    """Esplora's transaction: `prevouts` are the outputs the inputs spend (None for a coinbase
    input or one not found)."""
    vin = []
    coinbase = tx.is_coinbase()
    total_in = 0
    for txin, prev in zip(tx.vin, prevouts):
        p = txin.prevout
        item = {"txid": p.hash[::-1].hex(), "vout": p.n,
                "prevout": txout_json(prev, params) if prev is not None else None,
                "scriptsig": txin.script_sig.hex(), "scriptsig_asm": script_asm(txin.script_sig)}
        if txin.witness:
            item["witness"] = [w.hex() for w in txin.witness]
        item["is_coinbase"] = coinbase
        item["sequence"] = txin.sequence
        if prev is not None:
            total_in += prev.value
            spk = prev.script_pubkey
            redeem = None
            if script_type(spk) == "p2sh":
                redeem = _last_push(txin.script_sig)
                if redeem is not None:
                    item["inner_redeemscript_asm"] = script_asm(redeem)
            if (script_type(spk) == "v0_p2wsh" or redeem is not None
                    and script_type(redeem) == "v0_p2wsh") and txin.witness:
                item["inner_witnessscript_asm"] = script_asm(txin.witness[-1])
        vin.append(item)
    fee = 0
    if not coinbase and all(p is not None for p in prevouts):
        fee = total_in - tx.total_out()
    out = {"txid": tx.txid_hex(), "version": tx.version, "locktime": tx.locktime, "vin": vin,
           "vout": [txout_json(o, params) for o in tx.vout], "size": tx.size,
           "weight": tx.weight, "fee": fee}
    if status is not None:
        out["status"] = status
    return out


def block_json(e, size: int, weight: int) -> dict:
    return {"id": e.hash[::-1].hex(), "height": e.height, "version": e.version,
            "timestamp": e.time, "tx_count": e.n_tx, "size": size, "weight": weight,
            "merkle_root": e.merkle_root[::-1].hex(),
            "previousblockhash": e.prev.hash[::-1].hex() if e.prev is not None else None,
            "mediantime": e.median_time_past(), "nonce": e.nonce, "bits": e.bits,
            "difficulty": difficulty(e.bits)}
