"""BIP32: every vector of tests/data/bip32.json, serialization rules, paths and fingerprints."""

import pytest

from consensus.params import MAIN, REGTEST
from tests.conftest import load_json
from wallet.base58 import b58check_decode, b58check_encode
from wallet.bip32 import HARDENED, BIP32Error, ExtKey, format_path, parse_path

DATA = load_json("bip32.json")
PATH_VECTORS = [
    (name, path, keys)
    for name, vec in DATA.items()
    if isinstance(vec, dict)
    for path, keys in vec.items()
    if path != "seed"
]
IDS = [f"{n}:{p}" for n, p, _ in PATH_VECTORS]


@pytest.mark.parametrize("name,path,keys", PATH_VECTORS, ids=IDS)
def test_derivation_vectors(name, path, keys):
    root = ExtKey.from_seed(bytes.fromhex(DATA[name]["seed"]))
    key = root.derive_path(path)
    assert key.serialize(MAIN) == keys["prv"]
    assert key.neuter().serialize(MAIN) == keys["pub"]
    # Parsing gives the same key back, private and public.
    assert ExtKey.deserialize(keys["prv"], MAIN) == key
    assert ExtKey.deserialize(keys["pub"], MAIN) == key.neuter()
    assert key.depth == len(parse_path(path))


@pytest.mark.parametrize("name,path,keys", PATH_VECTORS, ids=IDS)
def test_public_derivation_matches_private(name, path, keys):
    """Below the last hardened step, xpub derivation gives the neutered xprv child."""
    steps = parse_path(path)
    last_hardened = max((i for i, s in enumerate(steps) if s & HARDENED), default=-1)
    root = ExtKey.from_seed(bytes.fromhex(DATA[name]["seed"]))
    parent = root.derive_path(steps[: last_hardened + 1]).neuter()
    assert parent.derive_path(steps[last_hardened + 1 :]).serialize(MAIN) == keys["pub"]


def test_vector_count():
    assert len(PATH_VECTORS) == 12


def test_seed_master_and_children():
    """The flat entries: a master key from `seed`, and children whose parents are found among
    the entries by parent fingerprint and derived by child number."""
    master = ExtKey.from_seed(bytes.fromhex(DATA["seed"]))
    assert master.serialize(MAIN) == DATA["master_priv"]
    assert master.neuter().serialize(MAIN) == DATA["master_pub"]
    keys = {k: ExtKey.deserialize(v, MAIN) for k, v in DATA.items() if k.startswith("child")}
    by_fp = {master.fingerprint: master}
    for k in keys.values():
        by_fp.setdefault(k.fingerprint, k)
    checked = 0
    for name, child in keys.items():
        parent = by_fp[child.parent_fingerprint]
        if not child.is_private:
            parent = parent.neuter()
        derived = parent.derive(child.child_number)
        assert derived == child, name
        assert derived.serialize(MAIN) == DATA[name]
        checked += 1
    assert checked == 11


def test_zero_padded_secret_roundtrip():
    key = ExtKey.deserialize(DATA["zero_priv"], MAIN)
    assert key.is_private and len(key.secret) == 32 and key.secret[0] == 0
    assert key.serialize(MAIN) == DATA["zero_priv"]


def test_regtest_prefixes():
    root = ExtKey.from_seed(bytes.fromhex(DATA["vector1"]["seed"]))
    tprv = root.serialize(REGTEST)
    tpub = root.neuter().serialize(REGTEST)
    assert tprv.startswith("tprv") and tpub.startswith("tpub")
    assert ExtKey.deserialize(tprv, REGTEST) == root
    with pytest.raises(BIP32Error, match="unknown extended key version"):
        ExtKey.deserialize(tprv, MAIN)
    with pytest.raises(BIP32Error, match="unknown extended key version"):
        ExtKey.deserialize(DATA["vector1"]["m"]["prv"], REGTEST)


def _reencode(s: str, edit) -> str:
    raw = bytearray(b58check_decode(s))
    edit(raw)
    return b58check_encode(bytes(raw))


def test_invalid_serializations():
    xprv = DATA["vector1"]["m"]["prv"]
    xpub = DATA["vector1"]["m"]["pub"]
    child = DATA["vector1"]["m/0'"]["pub"]

    def set_byte(i, v):
        def f(raw):
            raw[i] = v
        return f

    cases = [
        (_reencode(xpub, set_byte(45, 4)), "invalid public key prefix"),
        (_reencode(xpub, set_byte(45, 0)), "invalid public key prefix"),
        (_reencode(xprv, set_byte(45, 1)), "must start with 0x00"),
        (_reencode(xprv, lambda r: r.__setitem__(slice(46, 78), b"\x00" * 32)), "not in 1..n-1"),
        (_reencode(xprv, lambda r: r.__setitem__(slice(46, 78), b"\xff" * 32)), "not in 1..n-1"),
        (_reencode(xpub, set_byte(5, 1)), "zero depth"),
        (_reencode(child, set_byte(4, 0)), "zero depth"),
        (_reencode(xpub, set_byte(0, 0x05)), "unknown extended key version"),
        (_reencode(xpub, lambda r: r.__setitem__(slice(46, 78), b"\x00" * 31 + b"\x07")),
         "not on the curve"),
        (xpub[:-1] + ("2" if xpub[-1] != "2" else "3"), "invalid extended key encoding"),
        (b58check_encode(b"\x04\x88\xb2\x1e" + b"\x00" * 73), "invalid extended key length"),
    ]
    for s, msg in cases:
        with pytest.raises(BIP32Error, match=msg):
            ExtKey.deserialize(s, MAIN)


def test_hardened_public_derivation_refused():
    pub = ExtKey.from_seed(b"\x01" * 16).neuter()
    with pytest.raises(BIP32Error, match="requires a private key"):
        pub.derive(HARDENED)
    with pytest.raises(BIP32Error):
        pub.derive(1 << 32)


def test_seed_length():
    for n in (15, 65):
        with pytest.raises(BIP32Error):
            ExtKey.from_seed(b"\x00" * n)


def test_paths():
    assert parse_path("m/0'/1/2h/2147483647H".replace("H", "h")) == [
        HARDENED, 1, 2 | HARDENED, 0x7FFFFFFF | HARDENED
    ]
    assert parse_path("m") == [] and parse_path("") == []
    assert parse_path("0/1") == [0, 1]
    assert format_path([HARDENED, 1]) == "/0h/1"
    assert format_path([HARDENED, 1], apostrophe=True, prefix="m") == "m/0'/1"
    with pytest.raises(BIP32Error, match="Key path value 2147483648 is out of range"):
        parse_path("m/2147483648")
    with pytest.raises(BIP32Error, match="Key path value '1aa' is not a valid uint32"):
        parse_path("m/1aa")
    with pytest.raises(BIP32Error, match="not a valid uint32"):
        parse_path("m/0H")
    with pytest.raises(BIP32Error, match="not a valid uint32"):
        parse_path("m//1")


def test_fingerprint_is_hash160_prefix():
    root = ExtKey.from_seed(bytes.fromhex(DATA["vector1"]["seed"]))
    assert root.fingerprint == root.identifier[:4]
    assert root.derive(HARDENED).parent_fingerprint == root.fingerprint
    # Master fingerprint of BIP32 test vector 1 (its m/0' child names it as parent).
    child = ExtKey.deserialize(DATA["vector1"]["m/0'"]["pub"], MAIN)
    assert child.parent_fingerprint == root.fingerprint
