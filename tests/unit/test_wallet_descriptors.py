"""Output script descriptors against the BIP380-386 vectors and Bitcoin Core's descriptor tests."""

import pytest

from consensus.params import MAIN, REGTEST
from tests.conftest import load_json
from wallet.address import script_to_address
from wallet.bip32 import HARDENED, ExtKey
from wallet.descriptors import (
    DescriptorError,
    TRDescriptor,
    add_checksum,
    derive_addresses,
    descriptor_checksum,
    descriptor_info,
    expand,
    get_descriptor_checksum,
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
        (f"tr(musig({P1},{P1}))", "tr(): musig() key expressions are not supported"),
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
