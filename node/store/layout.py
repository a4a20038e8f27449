"""Every on-disk format of the node, in one place.

Datadir (per chain: main uses the datadir itself, regtest the subfolder `regtest/`, as Core):

    blocks/blk00000.dat   blocks, each framed as Core frames them:
                          message start (4) | size (u32 LE) | serialized block (with witness)
    blocks/rev00000.dat   undo data of the blocks stored in blk00000.dat:
                          message start (4) | size (u32 LE) | undo record | checksum (32)
                          checksum = sha256d(previous block hash || undo record)
    blocks/index/         LevelDB: the block index           (keys below)
    chainstate/           LevelDB: the UTXO set              (keys below)
    indexes/txindex/      LevelDB: the optional -txindex     (keys below)
    indexes/blockfilter/basic/db/, indexes/coinstatsindex/db/, indexes/txospenderindex/db/
                          LevelDB: the other optional indexes (keys in node/index/*.py;
                          b"B", each index's best block locator, in node/index/base.py)

Undo record of a block: CompactSize(number of non-coinbase transactions), then per
transaction CompactSize(number of inputs) and per input the coin it spent, encoded as a
chainstate coin value (below).

Block index (blocks/index):
    b"b" + block hash (32, internal order) -> header (80) | height u32 | status u32 |
        n_tx u32 | file i32 | data_pos u32 | undo_pos u32 | chain_work (32, an unsigned
        integer, LE) | chain_tx u64                                  (all little-endian)
        file is -1 while the block's data is not stored; data_pos points at the block
        bytes (after the 8-byte frame), undo_pos likewise into rev<file>.dat. chain_work
        and chain_tx (transactions up to this block, 0 until every ancestor's data is
        stored) let one entry be read without its ancestors. Format 1 (before "V")
        stopped after undo_pos; start-up upgrades it (ChainState.load).
    b"H" + height (u32 BIG-endian) -> block hash: the active chain, heights 0..tip
        (start-up reconciles it with the UTXO set's best block: it may be ahead or behind)
    b"T" + block hash -> b"": the leaves of the tree (entries without children): start-up
        reads every entry off the active chain from them
    b"F" + file number (u32 BIG-endian) -> b"": the blk files that blocks were stored in
        (Core's "Checking all blk files are present"; dropped as files are pruned)
    b"V" -> b"\x02": the format of these records (absent: format 1)
    b"R" -> b"\x01" while a reindex is in progress (absent otherwise)
    b"S" -> b"" rewritten with sync=True to force everything written before to disk

Chainstate (chainstate):
    b"C" + txid (32, internal order) + output index (u32 BIG-endian, so keys sort by
        outpoint as Core's chainstate does) -> code u32 LE (height << 1 | coinbase) |
        value i64 LE | scriptPubKey (rest)
    b"B" -> hash of the block the UTXO set is consistent with; written in the same atomic
        batch as the coins of each flush.

Transaction index (indexes/txindex):
    b"t" + txid (32) -> file i32 | block data_pos u32 | offset of the tx in the block u32
    b"B" -> locator of the last block indexed (node/index/base.py)
"""

from __future__ import annotations

import struct

from consensus.contextual import Coin
from consensus.serialize import DeserializationError, Reader, compact_size, expect_end

# -- block index ---------------------------------------------------------------------------

BLOCK_PREFIX = b"b"
ACTIVE_PREFIX = b"H"
LEAF_PREFIX = b"T"
FILE_PREFIX = b"F"
VERSION_KEY = b"V"
INDEX_VERSION = b"\x02"
REINDEX_KEY = b"R"
SYNC_KEY = b"S"
# One record: the header's fields (version, prev hash, merkle root, time, bits, nonce), then
# height, status, n_tx, file, data_pos, undo_pos, chain_work (32 bytes LE), chain_tx.
INDEX_RECORD = struct.Struct("<i32s32sIIIIIIiII32sQ")
INDEX_RECORD_SIZE = INDEX_RECORD.size  # 144
INDEX_RECORD_SIZE_V1 = 104  # format 1: the same fields up to undo_pos
_U32_BE = struct.Struct(">I")


def block_key(block_hash: bytes) -> bytes:
    return BLOCK_PREFIX + block_hash


def active_key(height: int) -> bytes:
    return ACTIVE_PREFIX + _U32_BE.pack(height)


def file_key(n: int) -> bytes:
    return FILE_PREFIX + _U32_BE.pack(n)


def file_of_key(key: bytes) -> int:
    return _U32_BE.unpack_from(key, 1)[0]


# -- chainstate ----------------------------------------------------------------------------

COIN_PREFIX = b"C"
BEST_BLOCK_KEY = b"B"
_COIN_HEAD = struct.Struct("<Iq")
_N_BE = struct.Struct(">I")


def outpoint_key(txid: bytes, n: int) -> bytes:
    """Cache and database key of an outpoint (without the b"C" prefix)."""
    return txid + _N_BE.pack(n)


def split_outpoint_key(key: bytes) -> tuple[bytes, int]:
    return key[:32], _N_BE.unpack_from(key, 32)[0]


def encode_coin(coin: Coin) -> bytes:
    return _COIN_HEAD.pack(coin.height << 1 | coin.coinbase, coin.value) + coin.script_pubkey


def decode_coin(raw: bytes) -> Coin:
    if len(raw) < _COIN_HEAD.size:
        raise DeserializationError(f"coin record of {len(raw)} bytes")
    code, value = _COIN_HEAD.unpack_from(raw)
    return Coin(value, raw[_COIN_HEAD.size :], code >> 1, bool(code & 1))


# -- undo records (rev?????.dat) ---------------------------------------------------------


def encode_undo(spent: list[list[Coin]]) -> bytes:
    """The coins each non-coinbase transaction of a block spent, in input order."""
    parts = [compact_size(len(spent))]
    append, pack = parts.append, _COIN_HEAD.pack
    for coins in spent:
        append(compact_size(len(coins)))
        for c in coins:  # (encode_coin, inlined: this runs for every input of a block)
            spk = c.script_pubkey
            append(compact_size(_COIN_HEAD.size + len(spk)))
            append(pack(c.height << 1 | c.coinbase, c.value))
            append(spk)
    return b"".join(parts)


def decode_undo(raw: bytes) -> list[list[Coin]]:
    r = Reader(raw)
    out = []
    for _ in range(r.compact_size()):
        out.append([decode_coin(r.var_bytes()) for _ in range(r.compact_size())])
    expect_end(r, "undo record")
    return out


# -- txindex -------------------------------------------------------------------------------

TX_PREFIX = b"t"
_TX_POS = struct.Struct("<iII")


def encode_tx_pos(file: int, data_pos: int, offset: int) -> bytes:
    return _TX_POS.pack(file, data_pos, offset)


def decode_tx_pos(raw: bytes) -> tuple[int, int, int]:
    return _TX_POS.unpack(raw)
