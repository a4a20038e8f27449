"""Output script descriptors against the BIP380-386 vectors and Bitcoin Core's descriptor tests."""

import pytest

from consensus.hashes import hash160
from consensus.params import MAIN, REGTEST
from consensus.script.standard import multisig_script, p2pk_script, p2tr_script
from tests.conftest import load_json
from wallet.address import address_to_script, script_to_address
from wallet.bip32 import HARDENED, ExtKey
from wallet.descriptors import (
    DescriptorError,
    DescriptorRangeError,
    ScanObject,
    SigningProvider,
    TRDescriptor,
    add_checksum,
    derive_addresses,
    descriptor_checksum,
    descriptor_info,
    expand,
    get_descriptor_checksum,
    infer_descriptor,
    infer_descriptor_for_script,
    mining_script,
    parse_descriptor,
    parse_range,
    split_checksum,
    to_addresses,
)

BIP = load_json("descriptor_bip380_386.json")
CORE = load_json("descriptor_core.json")


def _strip(desc: str) -> str:
    return desc.split("#")[0]


def _same(a: str, b: str) -> bool:
    """Core's EqualDescriptor: a checksum present on only one side is ignored."""
    if ("#" in a) != ("#" in b):
        return _strip(a) == _strip(b)
    return a == b


def _scripts(desc, pos):
    return [s.hex() for s in desc.expand(pos)]


# --- checksums (BIP380) ---


@pytest.mark.parametrize("desc,checksum", BIP["checksum_valid"])
def test_checksum_valid(desc, checksum):
    assert split_checksum(desc) == ("raw(deadbeef)", checksum)
    assert get_descriptor_checksum(desc) == checksum
    assert parse_descriptor(desc, MAIN).to_string() == "raw(deadbeef)#" + checksum


@pytest.mark.parametrize("desc,error", BIP["checksum_invalid"])
def test_checksum_invalid(desc, error):
    with pytest.raises(DescriptorError) as e:
        parse_descriptor(desc, MAIN)
    assert str(e.value) == error


def test_checksum_required():
    with pytest.raises(DescriptorError, match="^Missing checksum$"):
        parse_descriptor("raw(deadbeef)", MAIN, require_checksum=True)
    assert parse_descriptor("raw(deadbeef)#89f8spxm", MAIN, require_checksum=True)
    assert get_descriptor_checksum("raw(deadbeef)#00000000") == ""


def test_checksum_detects_case_change():
    assert descriptor_checksum("raw(DEADBEEF)") != descriptor_checksum("raw(deadbeef)")
    assert add_checksum("raw(deadbeef)") == "raw(deadbeef)#89f8spxm"


# --- key expressions (BIP380) ---


@pytest.mark.parametrize("key", BIP["key_valid"])
def test_key_expression_valid(key):
    d = parse_descriptor(f"pk({key})", MAIN)
    # The canonical string parses back to itself.
    again = parse_descriptor(d.to_string(), MAIN)
    assert again.to_string() == d.to_string()
    assert again.is_range() == d.is_range() == ("*" in key)
    body = key.split("]")[-1]
    steps = body.split("/")[1:]
    hardened_from_xpub = body.startswith("xpub") and any(s.endswith(("h", "'")) for s in steps)
    if hardened_from_xpub:
        with pytest.raises(DescriptorError, match="Cannot derive script without private keys"):
            d.expand(0)
    else:
        (script,) = d.expand(0)
        assert len(script) in (35, 67) and script[-1] == 0xAC


@pytest.mark.parametrize("key,error", BIP["key_invalid"])
def test_key_expression_invalid(key, error):
    with pytest.raises(DescriptorError) as e:
        parse_descriptor(f"pk({key})", MAIN)
    assert str(e.value) == "pk(): " + error


# --- BIP381-386 descriptors ---


@pytest.mark.parametrize("desc,scripts", BIP["valid"])
def test_bip_valid(desc, scripts):
    d = parse_descriptor(desc, MAIN)
    assert d.is_range() == (len(scripts) > 1)
    for pos, expected in enumerate(scripts):
        assert _scripts(d, pos) == [expected]
    # Through its canonical (public) string when that needs no private key to expand.
    pub = parse_descriptor(d.to_string(), MAIN)
    try:
        assert _scripts(pub, 0) == [scripts[0]]
    except DescriptorError as e:
        assert str(e) == "Cannot derive script without private keys"
        assert d.has_private_keys()
    # And through the private string, which keeps every key as given.
    assert _scripts(parse_descriptor(d.to_string(private=True), MAIN), 0) == [scripts[0]]


@pytest.mark.parametrize("desc,error", BIP["invalid"])
def test_bip_invalid(desc, error):
    with pytest.raises(DescriptorError) as e:
        parse_descriptor(desc, MAIN)
    if error is not None:
        assert str(e.value) == error


# --- Bitcoin Core's descriptor_tests.cpp ---


def _h(desc: str) -> str:
    """Core's UseHInsteadOfApostrophe: ' -> h, with the checksum recomputed if present."""
    out = desc.replace("'", "h")
    return add_checksum(_strip(out)) if "#" in desc else out


# Each row as written, and (as Core's Check does) with every ' replaced by h where there is one.
CORE_CHECKS = [(*row, False) for row in CORE["check"]] + [
    (*row, True) for row in CORE["check"] if "'" in row[0]
]


@pytest.mark.parametrize("prv,pub,ranged,scripts,use_h", CORE_CHECKS)
def test_core_check(prv, pub, ranged, scripts, use_h):
    if use_h:
        prv, pub = _h(prv), _h(pub)
    dprv = parse_descriptor(prv, MAIN)
    dpub = parse_descriptor(pub, MAIN)
    # Both serialize to the public form; the private one back to its private form.
    assert _same(pub, dprv.to_string())
    assert _same(pub, dpub.to_string())
    assert _same(prv, dprv.to_string(private=True))
    assert dprv.has_private_keys() and not dpub.has_private_keys()
    assert dprv.is_range() == dpub.is_range() == ranged
    assert dprv.is_solvable() and dpub.is_solvable()
    positions = range(len(scripts)) if ranged else range(3)
    for pos in positions:
        expected = scripts[pos] if ranged else scripts[0]
        assert _scripts(dprv, pos) == expected
        try:
            assert _scripts(dpub, pos) == expected
        except DescriptorError as e:
            # Hardened steps after an xpub need the private key (Core's HARDENED flag).
            assert str(e) == "Cannot derive script without private keys"
            assert "'" in pub or "h/" in pub or "h)" in pub


@pytest.mark.parametrize("prv,pub,error", CORE["unparsable"])
def test_core_unparsable(prv, pub, error):
    if prv:
        with pytest.raises(DescriptorError):
            parse_descriptor(prv, MAIN)
    with pytest.raises(DescriptorError) as e:
        parse_descriptor(pub, MAIN)
    assert str(e.value) == error


def test_vector_counts():
    assert len(BIP["valid"]) == 47 and len(BIP["invalid"]) == 30
    assert len(CORE["check"]) == 36 and len(CORE["unparsable"]) == 28


# --- getdescriptorinfo / deriveaddresses / helpers ---

K1 = "L4rK1yDtCWekvXuE6oXD9jCYfFNV2cWRpVuPLBcCU2z8TrisoyY1"
P1 = "03a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd"
XPRV = BIP["key_valid"][14]  # xprvA1Rp...
XPUB = BIP["key_valid"][7]  # its xpub, xpub6ERA...


def test_descriptor_info():
    info = descriptor_info(f"wpkh({K1})", MAIN)
    assert info == {
        "descriptor": add_checksum(f"wpkh({P1})"),
        "checksum": descriptor_checksum(f"wpkh({K1})"),
        "isrange": False,
        "issolvable": True,
        "hasprivatekeys": True,
    }
    info = descriptor_info(f"wpkh({XPUB}/0/*)", MAIN)
    assert info["isrange"] and not info["hasprivatekeys"]
    assert info["descriptor"] == add_checksum(f"wpkh({XPUB}/0/*)")
    addr_info = descriptor_info("addr(3PUNyaW7M55oKWJ3kDukwk9bsKvryra15j)", MAIN)
    assert not addr_info["issolvable"] and not addr_info["hasprivatekeys"]
    assert not descriptor_info("raw(deadbeef)", MAIN)["issolvable"]
    # The checksum field is that of the input, even when the input carries one.
    with_sum = add_checksum(f"pkh({P1})")
    assert descriptor_info(with_sum, MAIN)["checksum"] == with_sum.split("#")[1]


def test_canonical_form_normalizes_case_and_address():
    d = parse_descriptor(f"pk({P1.upper()})", MAIN)
    assert d.to_string() == add_checksum(f"pk({P1})")
    d = parse_descriptor("addr(BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4)", MAIN)
    assert d.to_string() == add_checksum("addr(bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4)")
    d = parse_descriptor("raw(DEADBEEF)", MAIN)
    assert d.to_string() == add_checksum("raw(deadbeef)")


def test_derive_addresses():
    desc = f"wpkh({XPUB}/0/*)"
    addrs = derive_addresses(desc, MAIN, [0, 2])
    root = ExtKey.deserialize(XPUB, MAIN)
    assert addrs == [
        script_to_address(parse_descriptor(f"wpkh({root.derive(0).derive(i).serialize(MAIN)})",
                                           MAIN).expand(0)[0], MAIN)
        for i in range(3)
    ]
    assert derive_addresses(desc, MAIN, 1) == addrs[:2]
    assert derive_addresses(f"wpkh({P1})", MAIN) == to_addresses(f"wpkh({P1})", MAIN)
    with pytest.raises(DescriptorError, match="^Range should not be specified for an un-ranged"):
        derive_addresses(f"wpkh({P1})", MAIN, 2)
    with pytest.raises(DescriptorError, match="^Range must be specified for a ranged descriptor"):
        derive_addresses(desc, MAIN)
    # combo: the P2PK script has no address and is skipped.
    assert len(derive_addresses(f"combo({P1})", MAIN)) == 3
    with pytest.raises(DescriptorError, match="^Descriptor does not have a corresponding address"):
        derive_addresses(f"pk({P1})", MAIN)
    with pytest.raises(DescriptorError, match="^Descriptor does not have a corresponding address"):
        derive_addresses("raw(6a00)", MAIN)


def test_parse_range():
    assert parse_range(5) == (0, 5)
    assert parse_range([2, 7]) == (2, 7)
    for bad, msg in (
        ([5, 2], "must not have begin after end"),
        ([-1, 2], "greater or equal than 0"),
        (1 << 31, "End of range is too high"),
        ([0, 1_000_000], "Range is too large"),
        ([1, 2, 3], "Range must be specified as end or as"),
        (True, "Range must be specified as end or as"),
    ):
        with pytest.raises(DescriptorError, match=msg):
            parse_range(bad)
    assert parse_range([0, 999_999]) == (0, 999_999)


def test_expand_helper():
    desc = f"pkh({XPUB}/*)"
    all3 = expand(desc, MAIN, [0, 2])
    assert all3 == [expand(desc, MAIN, i)[0] for i in range(3)]
    assert expand(f"pkh({P1})", MAIN) == expand(f"pkh({P1})", MAIN, 7)
    with pytest.raises(DescriptorError, match="Range must be specified"):
        expand(desc, MAIN)
    with pytest.raises(DescriptorError, match="out of range"):
        parse_descriptor(desc, MAIN).expand(HARDENED)


def test_expansion_metadata():
    d = parse_descriptor(f"sh(wpkh([ffffffff/13']{XPUB}/1/2/*))", MAIN)
    e = d.expand_full(5)
    (key,) = e.keys
    assert key.fingerprint == bytes.fromhex("ffffffff")
    assert key.path == (13 | HARDENED, 1, 2, 5)
    (redeem,) = e.subscripts.values()
    assert redeem[:2] == b"\x00\x14"
    # Without origin, the fingerprint is the xpub's own.
    e2 = parse_descriptor(f"wpkh({XPUB}/1)", MAIN).expand_full(0)
    assert e2.keys[0].fingerprint == ExtKey.deserialize(XPUB, MAIN).fingerprint
    assert e2.keys[0].path == (1,)


def test_regtest_keys_and_addresses():
    root = ExtKey.from_seed(bytes(range(32)))
    tprv = root.serialize(REGTEST)
    tpub = root.neuter().serialize(REGTEST)
    d = parse_descriptor(f"tr({tprv}/86h/1h/0h/0/*)", REGTEST)
    assert d.to_string().startswith("tr(" + tpub + "/86h/1h/0h/0/*)#")
    addrs = derive_addresses(f"tr({tprv}/86h/1h/0h/0/*)", REGTEST, [0, 1])
    assert all(a.startswith("bcrt1p") for a in addrs)
    # Regtest addresses in addr(), regtest WIF keys.
    a = addrs[0]
    assert expand(f"addr({a})", REGTEST) == expand(f"tr({tprv}/86h/1h/0h/0/*)", REGTEST, 0)
    with pytest.raises(DescriptorError, match="^Address is not valid$"):
        parse_descriptor(f"addr({a})", MAIN)
    with pytest.raises(DescriptorError, match=f"^pk\\(\\): key '{K1}' is not valid$"):
        parse_descriptor(f"pk({K1})", REGTEST)
    with pytest.raises(DescriptorError, match="is not valid"):
        parse_descriptor(f"pk({tpub})", MAIN)


def test_tree_strings_and_errors():
    xs = [BIP["valid"][-1][0].split(",")[0][3:]]  # the internal x-only key of BIP386
    k = xs[0]
    a = "pk(669b8afcec803a0d323e9a17f3ea8e68e8abe5a278020a929adbec52421adbd0)"
    tree = f"tr({k},{{{a},{{{a},{a}}}}})"
    d = parse_descriptor(tree, MAIN)
    assert isinstance(d, TRDescriptor) and d.depths == [1, 2, 2]
    assert d.to_string() == add_checksum(tree)
    deep = f"tr({k},{{{{{a},{a}}},{{{a},{a}}}}})"
    assert parse_descriptor(deep, MAIN).depths == [2, 2, 2, 2]
    for bad, msg in (
        (f"tr({k},{{{a},{a})", "tr(): expected '}' after script expression"),
        (f"tr({k},{{{a}}})", "tr(): expected ',' after script expression"),
        (f"tr({k},{a},{a})", "tr(): expected ')' after script expression"),
        (f"tr({k}}}{a})", "tr: expected ',', got '}'"),
        (f"tr({k}," + "{" * 129 + a + ")", "tr() supports at most 128 nesting levels"),
        (f"tr({k},multi(1,{P1}))", "Can only have multi/sortedmulti at top level, in sh(),"),
        (f"wsh(multi_a(1,{P1}))", "Can only have multi_a/sortedmulti_a inside tr()"),
        (f"sh(tr({k}))", "Can only have tr at top level"),
        (f"combo(pk({P1}))", "combo(): key 'pk(" + P1 + ")' is not valid"),
        (f"sh(combo({P1}))", "Can only have combo() at top level"),
        (f"rawtr({k},{k})", "rawtr(): only one key expected."),
        (f"foo({P1})", f"'foo({P1})' is not a valid descriptor function"),
        (f"pk({P1}),", "Unexpected ',' after descriptor"),
        ("pk( " + P1 + ")", "pk(): Key ' " + P1 + "' is invalid due to whitespace"),
        (f"multi(1,{P1};{P1})", "Multi: key '" + P1 + ";" + P1 + "' is not valid"),
        (f"multi(1,{','.join([P1] * 21)})", "Cannot have 21 keys in multisig"),
        (f"pkh(musig({P1},{P1}))", "pkh(): musig() is only allowed in tr() and rawtr()"),
    ):
        with pytest.raises(DescriptorError) as e:
            parse_descriptor(bad, MAIN)
        assert str(e.value).startswith(msg), (bad, str(e.value))


def test_multi_a_and_sorting():
    keys = [
        "669b8afcec803a0d323e9a17f3ea8e68e8abe5a278020a929adbec52421adbd0",
        "a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd",
    ]
    internal = keys[1]
    multi = parse_descriptor(f"tr({internal},multi_a(2,{keys[1]},{keys[0]}))", MAIN)
    srt = parse_descriptor(f"tr({internal},sortedmulti_a(2,{keys[1]},{keys[0]}))", MAIN)
    same_order = parse_descriptor(f"tr({internal},multi_a(2,{keys[0]},{keys[1]}))", MAIN)
    assert srt.expand() == same_order.expand() != multi.expand()
    (leaf,) = multi.subs
    assert leaf.expand()[0].hex() == (
        "20" + keys[1] + "ac" + "20" + keys[0] + "ba" + "52" + "9c"
    )


def test_rawtr():
    x = "a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd"
    d = parse_descriptor(f"rawtr({x})", MAIN)
    assert d.expand()[0].hex() == "5120" + x
    assert d.to_string() == add_checksum(f"rawtr({x})")


def test_hardened_wildcard_apostrophe_kept():
    d = parse_descriptor(f"wpkh({XPRV}/0'/*')", MAIN)
    assert d.to_string() == add_checksum(f"wpkh({XPUB}/0'/*')")
    d = parse_descriptor(f"wpkh({XPRV}/0h/*h)", MAIN)
    assert d.to_string() == add_checksum(f"wpkh({XPUB}/0h/*h)")
    # Public form of a hardened path cannot be expanded; the private one can.
    with pytest.raises(DescriptorError, match="Cannot derive script without private keys"):
        parse_descriptor(d.to_string(), MAIN).expand(0)
    assert len(d.expand(3)) == 1


def test_mining_script():
    assert mining_script(f"wpkh({P1})", MAIN) == parse_descriptor(f"wpkh({P1})", MAIN).expand()[0]
    combo = parse_descriptor(f"combo({P1})", MAIN).expand()
    assert mining_script(f"combo({P1})", MAIN) == combo[2]  # P2WPKH
    uncompressed = BIP["valid"][6][0][3:-1]  # the 04... key of pk(04...)
    assert mining_script(f"combo({uncompressed})", MAIN) == parse_descriptor(
        f"pkh({uncompressed})", MAIN
    ).expand()[0]
    with pytest.raises(DescriptorError, match="^Ranged descriptor not accepted"):
        mining_script(f"wpkh({XPUB}/*)", MAIN)


# --- range errors: RPC_INVALID_PARAMETER (-8) in Core ---

# rpc_scantxoutset.py "Test range validation": each scan object is {"desc": "desc", "range": r}.
# The range is checked before the (invalid) descriptor is parsed.
SCAN_RANGE_ERRORS = [
    (-1, "End of range is too high"),
    ([-1, 10], "Range should be greater or equal than 0"),
    ([(2 << 31 + 1) - 1000000, (2 << 31 + 1)], "End of range is too high"),
    ([2, 1], "Range specified as [begin,end] must not have begin after end"),
    ([0, 1000001], "Range is too large"),
]


@pytest.mark.parametrize("rng,error", SCAN_RANGE_ERRORS)
def test_scan_range_errors(rng, error):
    with pytest.raises(DescriptorRangeError) as e:
        ScanObject("desc", REGTEST, rng)
    assert str(e.value) == error
    with pytest.raises(DescriptorRangeError) as e:
        parse_range(rng)
    assert str(e.value) == error


def test_range_usage_errors_are_range_errors():
    ranged = f"wpkh({XPUB}/0/*)"
    for call, msg in (
        (lambda: parse_range("7"), "Range must be specified as end or as [begin,end]"),
        (lambda: parse_range([1, "2"]), "Range must be specified as end or as [begin,end]"),
        (lambda: derive_addresses(f"wpkh({P1})", MAIN, 2),
         "Range should not be specified for an un-ranged descriptor"),
        (lambda: derive_addresses(ranged, MAIN), "Range must be specified for a ranged descriptor"),
        (lambda: expand(ranged, MAIN), "Range must be specified for a ranged descriptor"),
        (lambda: mining_script(ranged, MAIN),
         "Ranged descriptor not accepted. Maybe pass through deriveaddresses first?"),
    ):
        with pytest.raises(DescriptorRangeError) as e:
            call()
        assert str(e.value) == msg
        assert isinstance(e.value, DescriptorError)
    # Everything else stays a plain DescriptorError (-5).
    for call in (
        lambda: derive_addresses("wpkh(nope)", MAIN, 2),
        lambda: mining_script("desc", MAIN),
        lambda: derive_addresses(f"pk({P1})", MAIN),
        lambda: ScanObject("desc", REGTEST),
    ):
        with pytest.raises(DescriptorError) as e:
            call()
        assert not isinstance(e.value, DescriptorRangeError)


# --- scantxoutset's "desc": InferDescriptor from the scan object's provider ---

# rpc_scantxoutset.py: the test sends one coin to each of these (addresses of child keys of TPRV;
# amounts in units of 0.001 BTC, each a power of two, so a total names the set found).
TPRV = ("tprv8ZgxMBicQKsPd7Uf69XL1XwhmjHopUGep8GuEiJDZmbQz6o58LninorQAfcKZWARbtRtfnLcJ5MQ2"
        "AtHcQJCCRUcMRvmDUjyEmNUWwx8UbK")
TPUB = ("tpubD6NzVbkrYhZ4WaWSyoBvQwbpLkojyoTZPRsgXELWz3Popb3qkjcJyJUGLnL4qHHoQvao8ESaAstxY"
        "SnhyswJ76uZPStJRJCTKvosUCJZL5B")
SCAN_COINS = {
    "mkHV1C6JLheLoUSSZYk7x3FH5tnx9bu7yc": 8,  # m/0'/0'/0'
    "mipUSRmJAj2KrjSvsPQtnP8ynUon7FhpCR": 16,  # m/0'/0'/1'
    "n37dAGe6Mq1HGM9t4b6rFEEsDGq7Fcgfqg": 32,  # m/0'/0'/1500'
    "mqS9Rpg8nNLAzxFExsgFLCnzHBsoQ3PRM6": 64,  # m/0'/0'/0
    "mnTg5gVWr3rbhHaKjJv7EEEc76ZqHgSj4S": 128,  # m/0'/0'/1
    "mketCd6B9U9Uee1iCsppDJJBHfvi6U6ukC": 256,  # m/0'/0'/1500
    "mj8zFzrbBcdaWXowCQ1oPZ4qioBVzLzAp7": 512,  # m/1/1/0'
    "mfnKpKQEftniaoE1iXuMMePQU3PUpcNisA": 1024,  # m/1/1/1'
    "mou6cB1kaP1nNJM1sryW6YRwnd4shTbXYQ": 2048,  # m/1/1/1500'
    "mtfUoUax9L4tzXARpw1oTGxWyoogp52KhJ": 4096,  # m/1/1/0
    "mxp7w7j8S1Aq6L8StS2PqVvtt4HGxXEvdy": 8192,  # m/1/1/1
    "mpQ8rokAhp1TAtJQR6F6TaUmjAWkAWYYBq": 16384,  # m/1/1/1500
}

# rpc_scantxoutset.py "Test extended key derivation": (scan object, total_amount in 0.001 BTC).
SCAN_TOTALS = [
    (f"combo({TPRV}/0'/0h/0h)", None, 8),
    (f"combo({TPRV}/0'/0'/1h)", None, 16),
    (f"combo({TPRV}/0h/0'/1500')", None, 32),
    (f"combo({TPRV}/0h/0h/0)", None, 64),
    (f"combo({TPRV}/0'/0h/1)", None, 128),
    (f"combo({TPRV}/0h/0'/1500)", None, 256),
    (f"combo({TPRV}/0'/0h/*h)", 1499, 24),
    (f"combo({TPRV}/0'/0'/*h)", 1500, 56),
    (f"combo({TPRV}/0h/0'/*)", 1499, 192),
    (f"combo({TPRV}/0'/0h/*)", 1500, 448),
    (f"combo({TPRV}/1/1/0')", None, 512),
    (f"combo({TPRV}/1/1/1')", None, 1024),
    (f"combo({TPRV}/1/1/1500h)", None, 2048),
    (f"combo({TPRV}/1/1/0)", None, 4096),
    (f"combo({TPRV}/1/1/1)", None, 8192),
    (f"combo({TPRV}/1/1/1500)", None, 16384),
    (f"combo({TPUB}/1/1/0)", None, 4096),
    (f"combo([abcdef88/1/2'/3/4h]{TPUB}/1/1/1)", None, 8192),
    (f"combo({TPUB}/1/1/1500)", None, 16384),
    (f"combo({TPRV}/1/1/*')", 1499, 1536),
    (f"combo({TPRV}/1/1/*')", 1500, 3584),
    (f"combo({TPRV}/1/1/*)", 1499, 12288),
    (f"combo({TPRV}/1/1/*)", 1500, 28672),
    (f"combo({TPUB}/1/1/*)", 1499, 12288),
    (f"combo({TPUB}/1/1/*)", 1500, 28672),
    (f"combo({TPUB}/1/1/*)", [1500, 1500], 16384),
]


@pytest.mark.parametrize("desc,rng,total", SCAN_TOTALS)
def test_core_scan_totals(desc, rng, total):
    scripts = set(ScanObject(desc, REGTEST, rng).scripts)
    found = sum(v for a, v in SCAN_COINS.items() if address_to_script(a, REGTEST) in scripts)
    assert found == total


# rpc_scantxoutset.py "Test the reported descriptors for a few matches".
SCAN_REPORTED = [
    (f"combo({TPRV}/0h/0h/*)", 1499, [
        "pkh([0c5f9a1e/0h/0h/0]026dbd8b2315f296d36e6b6920b1579ca75569464875c7ebe869b536a7d9503c8c)"
        "#rthll0rg",
        "pkh([0c5f9a1e/0h/0h/1]033e6f25d76c00bedb3a8993c7d5739ee806397f0529b1b31dda31ef890f19a60c)"
        "#mcjajulr",
    ]),
    (f"combo({TPRV}/1/1/0)", None, [
        "pkh([0c5f9a1e/1/1/0]03e1c5b6e650966971d7e71ef2674f80222752740fc1dfd63bbbd220d2da9bd0fb)"
        "#cxmct4w8",
    ]),
    (f"combo({TPUB}/1/1/*)", 1500, [
        "pkh([0c5f9a1e/1/1/0]03e1c5b6e650966971d7e71ef2674f80222752740fc1dfd63bbbd220d2da9bd0fb)"
        "#cxmct4w8",
        "pkh([0c5f9a1e/1/1/1500]03832901c250025da2aebae2bfb38d5c703a57ab66ad477f9c578bfbcd78abca6f)"
        "#vchwd07g",
        "pkh([0c5f9a1e/1/1/1]030d820fc9e8211c4169be8530efbc632775d8286167afd178caaf1089b77daba7)"
        "#z2t3ypsa",
    ]),
]


@pytest.mark.parametrize("desc,rng,expected", SCAN_REPORTED)
def test_core_scan_reported_descriptors(desc, rng, expected):
    so = ScanObject(desc, REGTEST, rng)
    scripts = set(so.scripts)
    found = [address_to_script(a, REGTEST) for a in SCAN_COINS]
    got = sorted(so.infer(s) for s in found if s in scripts)
    assert got == expected
    assert all(so.descriptors()[s] == so.infer(s) for s in found if s in scripts)


def test_infer_for_script_at_index():
    spk = address_to_script("mpQ8rokAhp1TAtJQR6F6TaUmjAWkAWYYBq", REGTEST)
    desc = f"combo({TPUB}/1/1/*)"
    assert infer_descriptor_for_script(desc, REGTEST, spk, 1500) == (
        "pkh([0c5f9a1e/1/1/1500]03832901c250025da2aebae2bfb38d5c703a57ab66ad477f9c578bfbcd78abca6f)"
        "#vchwd07g"
    )
    assert infer_descriptor_for_script(desc, REGTEST, spk, 1499) is None
    # An explicit origin comes first, then the path below the xpub.
    spk = address_to_script("mxp7w7j8S1Aq6L8StS2PqVvtt4HGxXEvdy", REGTEST)
    got = infer_descriptor_for_script(f"combo([abcdef88/1/2'/3/4h]{TPUB}/1/1/1)", REGTEST, spk, 0)
    assert got.startswith("pkh([abcdef88/1/2h/3/4h/1/1/1]03")
    # A script the descriptor does not make.
    assert infer_descriptor_for_script(f"wpkh({P1})", MAIN, b"\x51", 0) is None


def _fp(pubkey_hex: str) -> str:
    return hash160(bytes.fromhex(pubkey_hex))[:4].hex()


def test_infer_shapes():
    """What each kind of scan descriptor reports for its outputs."""
    root = ExtKey.deserialize(XPUB, MAIN)
    child = root.derive(0).derive(5).pubkey
    fp_root = root.fingerprint.hex()
    cases = [
        # An xpub's own fingerprint, then the derivation steps.
        (f"wpkh({XPUB}/0/*)", 5, f"wpkh([{fp_root}/0/5]{child.hex()})"),
        # A plain key is its own origin: Core's provider records hash160(key)[:4] for it.
        (f"wpkh({P1})", 0, f"wpkh([{_fp(P1)}]{P1})"),
        (f"sh(wpkh({P1}))", 0, f"sh(wpkh([{_fp(P1)}]{P1}))"),
        (f"wsh(pkh({P1}))", 0, f"wsh(pkh([{_fp(P1)}]{P1}))"),
        (f"sh(wsh(pk({P1})))", 0, f"sh(wsh(pk([{_fp(P1)}]{P1})))"),
        (f"tr({XPUB}/0/*)", 5, f"tr([{fp_root}/0/5]{child[1:].hex()})"),
        (f"rawtr({XPUB}/0/*)", 5, f"rawtr([{fp_root}/0/5]{child[1:].hex()})"),
        ("addr(bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4)", 0,
         "addr(bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4)"),
        ("addr(3PUNyaW7M55oKWJ3kDukwk9bsKvryra15j)", 0, "addr(3PUNyaW7M55oKWJ3kDukwk9bsKvryra15j)"),
        ("raw(6a0401020304)", 0, "raw(6a0401020304)"),
        # sortedmulti comes back as multi, keys in script order.
        (f"sh(sortedmulti(1,{XPUB}/0/*,{P1}))", 5,
         f"sh(multi(1,[{fp_root}/0/5]{child.hex()},[{_fp(P1)}]{P1}))"
         if child < bytes.fromhex(P1) else
         f"sh(multi(1,[{_fp(P1)}]{P1},[{fp_root}/0/5]{child.hex()}))"),
    ]
    for desc, pos, expected in cases:
        (spk,) = parse_descriptor(desc, MAIN).expand(pos)
        assert infer_descriptor_for_script(desc, MAIN, spk, pos) == add_checksum(expected), desc
    # A taproot address is inferred as rawtr() of its output key.
    taddr = "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"
    spk = address_to_script(taddr, MAIN)
    assert infer_descriptor_for_script(f"addr({taddr})", MAIN, spk) == add_checksum(
        f"rawtr({spk[2:].hex()})")
    # A raw bare multisig script is multi() of its keys (no origins: raw() knows none).
    ms = multisig_script(1, [bytes.fromhex(P1), child])
    assert infer_descriptor_for_script(f"raw({ms.hex()})", MAIN, ms) == add_checksum(
        f"multi(1,{P1},{child.hex()})")
    assert infer_descriptor_for_script(f"multi(1,{P1},{XPUB}/0/*)", MAIN, ms, 5) == add_checksum(
        f"multi(1,[{_fp(P1)}]{P1},[{fp_root}/0/5]{child.hex()})")
    # combo() finds each of its four outputs as what it is.
    combo = parse_descriptor(f"combo({P1})", MAIN).expand(0)
    assert [infer_descriptor_for_script(f"combo({P1})", MAIN, s) for s in combo] == [
        add_checksum(f"{f}([{_fp(P1)}]{P1}){')' if f == 'sh(wpkh' else ''}")
        for f in ("pk", "pkh", "wpkh", "sh(wpkh")
    ]


# Core's descriptor_tests.cpp CheckInferDescriptor: (script, expected, provider scripts,
# provider pubkeys with origin). The addr() cases carry this chain's address for the script.
CORE_INFER = [
    ("a9141a31ad23bf49c247dd531a623c2ef57da3c400c587",
     "sh(pkh([deadbeef/0h/0h/0]03a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd))",
     ["76a9149a1c78a507689f6f54b847ad1cef1e614ee23f1e88ac"],
     [("03a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd", "deadbeef/0h/0h/0")]),
    # A P2PK script with a hybrid key is raw().
    ("41069228de6902abb4f541791f6d7f925b10e2078ccb1298856e5ea5cc5fd667f930eac37a00cc07f9a91ef3c2d1"
     "7bf7a17db04552ff90ac312a5b8b4caca6c97aa4ac",
     "raw(41069228de6902abb4f541791f6d7f925b10e2078ccb1298856e5ea5cc5fd667f930eac37a00cc07f9a91ef3c"
     "2d17bf7a17db04552ff90ac312a5b8b4caca6c97aa4ac)", [],
     [("069228de6902abb4f541791f6d7f925b10e2078ccb1298856e5ea5cc5fd667f930eac37a00cc07f9a91ef3c2d17b"
       "f7a17db04552ff90ac312a5b8b4caca6c97aa4", "")]),
    # A P2PKH script of a hybrid key is addr().
    ("76a91445ff7c2327866472639d507334a9a00119dfd32688ac", "addr", [],
     [("069228de6902abb4f541791f6d7f925b10e2078ccb1298856e5ea5cc5fd667f930eac37a00cc07f9a91ef3c2d17b"
       "f7a17db04552ff90ac312a5b8b4caca6c97aa4", "")]),
    # A P2WPKH script of an uncompressed key is addr().
    ("001422e363a523947a110d9a9eb114820de183aca313", "addr", [],
     [("049228de6902abb4f541791f6d7f925b10e2078ccb1298856e5ea5cc5fd667f930eac37a00cc07f9a91ef3c2d17b"
       "f7a17db04552ff90ac312a5b8b4caca6c97aa4", "")]),
    # pkh() and pk() of uncompressed keys.
    ("76a914a31725c74421fadc50d35520ab8751ed120af80588ac",
     "pkh(04c56fe4a92d401bcbf1b3dfbe4ac3dac5602ca155a3681497f02c1b9a733b92d704e2da6ec4162e4846af9236"
     "ef4171069ac8b7f8234a8405b6cadd96f34f5a31)", [],
     [("04c56fe4a92d401bcbf1b3dfbe4ac3dac5602ca155a3681497f02c1b9a733b92d704e2da6ec4162e4846af9236ef"
       "4171069ac8b7f8234a8405b6cadd96f34f5a31", "")]),
    ("4104032540df1d3c7070a8ab3a9cdd304dfc7fd1e6541369c53c4c3310b2537d91059afc8b8e7673eb812a32978d"
     "abb78c40f2e423f7757dca61d11838c7aeeb5220ac",
     "pk(04032540df1d3c7070a8ab3a9cdd304dfc7fd1e6541369c53c4c3310b2537d91059afc8b8e7673eb812a32978d"
     "abb78c40f2e423f7757dca61d11838c7aeeb5220)", [],
     [("04032540df1d3c7070a8ab3a9cdd304dfc7fd1e6541369c53c4c3310b2537d91059afc8b8e7673eb812a32978da"
       "bb78c40f2e423f7757dca61d11838c7aeeb5220", "")]),
]


@pytest.mark.parametrize("script,expected,scripts,pubkeys", CORE_INFER)
def test_core_infer_descriptor(script, expected, scripts, pubkeys):
    prov = SigningProvider()
    for s in scripts:
        s = bytes.fromhex(s)
        prov.scripts[hash160(s)] = s
    for pub, origin in pubkeys:
        pub = bytes.fromhex(pub)
        prov.pubkeys[hash160(pub)] = pub
        if origin:
            fpr, *steps = origin.split("/")
            path = tuple(int(x[:-1]) | HARDENED if x[-1] in "h'" else int(x) for x in steps)
            prov.origins[hash160(pub)] = (bytes.fromhex(fpr), path)
    spk = bytes.fromhex(script)
    if expected == "addr":
        expected = f"addr({script_to_address(spk, MAIN)})"
    assert infer_descriptor(spk, MAIN, prov) == add_checksum(expected)


def test_infer_without_provider():
    """InferDescriptor with no key information, as decodescript and friends use it."""
    key = bytes.fromhex(P1)
    assert infer_descriptor(p2pk_script(key), MAIN) == add_checksum(f"pk({P1})")
    assert infer_descriptor(multisig_script(1, [key]), MAIN) == add_checksum(f"multi(1,{P1})")
    assert infer_descriptor(p2tr_script(key[1:]), MAIN) == add_checksum(f"rawtr({P1[2:]})")
    assert infer_descriptor(p2tr_script(bytes(32)), MAIN).startswith("addr(bc1p")  # not a point
    assert infer_descriptor(bytes.fromhex("6a00"), MAIN) == add_checksum("raw(6a00)")
    assert infer_descriptor(b"", MAIN) == add_checksum("raw()")
    # A v0 program of an odd size has no address.
    assert infer_descriptor(bytes.fromhex("0003010203"), MAIN) == add_checksum("raw(0003010203)")


# Keys for taproot trees: A's leaf script sorts after B's (0xa3... > 0x66...).
XA = "a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd"
XB = "669b8afcec803a0d323e9a17f3ea8e68e8abe5a278020a929adbec52421adbd0"


def _pk(x: str) -> str:
    return f"pk([{_fp('02' + x)}]{x})"


def test_infer_taproot_trees():
    """Core rebuilds a tree from its control blocks (InferTaprootTree), which do not say which
    sibling is left: walking the leaf scripts in byte order, the subtree holding the first one
    comes out on the left. Identical subtrees come out twice."""
    ka = f"[{_fp('02' + XA)}]{XA}"
    cases = [
        (f"tr({XA},{{pk({XA}),pk({XB})}})", f"tr({ka},{{{_pk(XB)},{_pk(XA)}}})"),
        (f"tr({XA},{{pk({XB}),pk({XA})}})", f"tr({ka},{{{_pk(XB)},{_pk(XA)}}})"),
        (f"tr({XA},pk({XA}))", f"tr({ka},{_pk(XA)})"),
        (f"tr({XA},{{pk({XA}),pk({XA})}})", f"tr({ka},{{{_pk(XA)},{_pk(XA)}}})"),
        (f"tr({XA},{{{{pk({XA}),pk({XB})}},{{pk({XB}),pk({XA})}}}})",
         f"tr({ka},{{{{{_pk(XB)},{_pk(XA)}}},{{{_pk(XB)},{_pk(XA)}}}}})"),
        (f"tr({XA},{{pk({XA}),{{pk({XB}),multi_a(1,{XA},{XB})}}}})",
         f"tr({ka},{{{{{_pk(XB)},multi_a(1,{ka},[{_fp('02' + XB)}]{XB})}},{_pk(XA)}}})"),
    ]
    for desc, expected in cases:
        (spk,) = parse_descriptor(desc, MAIN).expand(0)
        got = infer_descriptor_for_script(desc, MAIN, spk)
        assert got == add_checksum(expected), desc
        assert parse_descriptor(got, MAIN).expand(0) == [spk]


ROUNDTRIP = [
    f"combo({P1})", f"pk({K1})", f"pkh([deadbeef/1h/2]{XPUB}/3/*)", f"wpkh({XPRV}/1h/*h)",
    f"sh(wpkh({XPUB}/*))", f"wsh(sortedmulti(2,{XPUB}/0/*,{P1},{XPUB}/1/*))",
    f"sh(wsh(multi(1,{XPUB}/5/*,{P1})))", f"sh(multi(2,{P1},{XPUB}/7/*))",
    f"tr({XPUB}/0/*,{{pk({XPUB}/1/*),{{multi_a(1,{XA},{XPUB}/2/*),sortedmulti_a(1,{XB},{XA})}}}})",
    f"tr([12345678/86h]{XPUB}/0/*)", f"rawtr({XPUB}/9/*)", f"multi(1,{P1},{XPUB}/4/*)",
]


@pytest.mark.parametrize("desc", ROUNDTRIP)
def test_inferred_descriptors_roundtrip(desc):
    """Core's descriptor_tests: the inferred descriptor expands to the same script, with the
    same key origins."""
    d = parse_descriptor(desc, MAIN)
    for pos in range(3 if d.is_range() else 1):
        prov = SigningProvider()
        for spk in prov.add_descriptor(d, pos):
            inferred = infer_descriptor(spk, MAIN, prov)
            again = parse_descriptor(inferred, MAIN)
            assert again.expand(0) == [spk]
            for k in again.expand_full(0).keys:
                # (x-only keys come back with an even Y: look them up as Core does)
                origin = prov.origins.get(hash160(k.pubkey)) or prov.origin_of_xonly(k.pubkey[1:])
                assert (k.fingerprint, k.path) == origin


def test_scan_object():
    so = ScanObject(f"wpkh({XPUB}/0/*)", MAIN)
    assert so.range == (0, 1000) and len(so.scripts) == 1001
    assert len(so.descriptors()) == 1001
    # A range given to a descriptor that is not ranged is ignored, as in Core.
    so = ScanObject(f"wpkh({P1})", MAIN, [5, 10])
    assert so.range == (0, 0) and len(so.scripts) == 1
    # Hardened steps from an xpub: Core's -5 message names the scan descriptor.
    with pytest.raises(DescriptorError) as e:
        ScanObject(f"wpkh({XPUB}/0h/*)", MAIN, 2)
    assert str(e.value) == f"Cannot derive script without private keys: 'wpkh({XPUB}/0h/*)'"
    assert not isinstance(e.value, DescriptorRangeError)
    # A bare address is not a descriptor.
    with pytest.raises(DescriptorError):
        ScanObject("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", MAIN)
