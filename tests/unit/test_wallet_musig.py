"""musig() descriptor keys: BIP327 KeyAgg and KeySort, BIP328 synthetic xpubs, BIP390's
descriptor vectors and Core's parse errors; unused(KEY)."""

from __future__ import annotations

import pytest

from consensus.params import CHAINS
from tests.conftest import load_json
from wallet.bip32 import ExtKey
from wallet.descriptors import (
    DescriptorError,
    MuSigKey,
    descriptor_info,
    parse_descriptor,
    parse_descriptors,
)
from wallet.musig import MuSigError, aggregate_sorted, key_agg, synthetic_xpub

MAIN = CHAINS["main"]
REGTEST = CHAINS["regtest"]

# BIP390's keys
K1 = "02f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"
K2 = "03dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659"
K3 = "023590a94e768f8e1815c2f24b4d80a8e3149316c3518ce7b7ad338368d038ca66"
KEYS = f"{K1},{K2},{K3}"
X1 = ("xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2gr"
      "BGRjaDMzQLcgJvLJuZZvRcEL")
X2 = ("xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6"
      "oDaPPLPxSb7gwQN3ih19Zm4Y")


def test_bip327_key_agg_vectors():
    v = load_json("bip327_key_agg_vectors.json")
    keys = [bytes.fromhex(k) for k in v["pubkeys"]]
    for case in v["valid_test_cases"]:
        q = key_agg([keys[i] for i in case["key_indices"]])
        assert q[1:].hex().upper() == case["expected"]
    for case in v["error_test_cases"]:
        with pytest.raises(MuSigError, match=f"participant {case['signer']}"):
            key_agg([keys[i] for i in case["key_indices"]])


def test_bip328_synthetic_xpubs():
    for case in load_json("bip328_vectors.json"):
        q = key_agg([bytes.fromhex(k) for k in case["keys"]])
        assert q.hex() == case["aggregate_pubkey"]
        assert synthetic_xpub(q).serialize(MAIN) == case["xpub"]


def test_key_sort_makes_order_irrelevant():
    keys = [bytes.fromhex(k) for k in (K1, K2, K3)]
    assert aggregate_sorted(keys) == aggregate_sorted(keys[::-1])
    assert key_agg(keys) != key_agg(keys[::-1])


BIP390_VALID = [
    ("rawtr(musig(KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU74sHUHy8S," + f"{K2},{K3}))",
     ["5120789d937bade6673538f3e28d8368dda4d0512f94da44cf477a505716d26a1575"]),
    (f"tr(musig({KEYS}))",
     ["512079e6c3e628c9bfbce91de6b7fb28e2aec7713d377cf260ab599dcbc40e542312"]),
    (f"rawtr(musig({X1},{X2})/0/*)",
     ["51209508c08832f3bb9d5e8baf8cb5cfa3669902e2f2da19acea63ff47b93faa9bfc",
      "51205ca1102663025a83dd9b5dbc214762c5a6309af00d48167d2d6483808525a298",
      "51207dbed1b89c338df6a1ae137f133a19cae6e03d481196ee6f1a5c7d1aeb56b166"]),
    (f"tr(musig({X1},{X2})/0/*,pk({K1[2:]}))",
     ["51201d377b637b5c73f670f5c8a96a2c0bb0d1a682a1fca6aba91fe673501a189782",
      "51208950c83b117a6c208d5205ffefcf75b187b32512eb7f0d8577db8d9102833036",
      "5120a49a477c61df73691b77fcd563a80a15ea67bb9c75470310ce5c0f25918db60d"]),
    (f"tr({K1[2:]},pk(musig({X1},{X2})/0/*))",
     ["512068983d461174afc90c26f3b2821d8a9ced9534586a756763b68371a404635cc8",
      "5120368e2d864115181bdc8bb5dc8684be8d0760d5c33315570d71a21afce4afd43e",
      "512097a1e6270b33ad85744677418bae5f59ea9136027223bc6e282c47c167b471d5"]),
]


@pytest.mark.parametrize("desc,scripts", BIP390_VALID)
def test_bip390_valid(desc, scripts):
    d = parse_descriptor(desc, MAIN)
    assert [d.expand(i)[0].hex() for i in range(len(scripts))] == scripts
    assert d.is_range() == (len(scripts) > 1)
    # the public string parses back to the same scripts
    again = parse_descriptor(d.to_string(), MAIN)
    assert again.expand(0) == d.expand(0)


BAD = [
    (f"pk(musig({KEYS}))", "pk(): musig() is only allowed in tr() and rawtr()"),
    (f"pkh(musig({KEYS}))", "pkh(): musig() is only allowed in tr() and rawtr()"),
    (f"wpkh(musig({KEYS}))", "wpkh(): musig() is only allowed in tr() and rawtr()"),
    (f"combo(musig({KEYS}))", "combo(): musig() is only allowed in tr() and rawtr()"),
    (f"sh(wpkh(musig({KEYS})))", "wpkh(): musig() is only allowed in tr() and rawtr()"),
    (f"sh(wsh(pk(musig({KEYS}))))", "pk(): musig() is only allowed in tr() and rawtr()"),
    (f"wsh(musig({KEYS}))", "A function is needed within P2WSH"),
    (f"sh(musig({KEYS}))", "A function is needed within P2SH"),
    (f"tr(musig({KEYS})/0/0)",
     "tr(): musig(): derivation requires all participants to be xpubs or xprvs"),
    (f"tr(musig({X1}/*,{X2})/0/*)",
     "tr(): musig(): Cannot have ranged participant keys if musig() also has derivation"),
    (f"tr(musig({X1},{X2})/0h/*)", "tr(): musig(): cannot have hardened derivation steps"),
    (f"tr(musig({X1},{X2})/0/*h)", "tr(): musig(): Cannot have hardened child derivation"),
    ("tr(musig())", "tr(): musig(): Must contain key expressions"),
    (f"tr(musig({X1},musig({X2})))", "tr(): Too many ')' in musig() expression"),
    (f"tr(musig({X1},{K2[2:]}))", f"tr(): musig(): Pubkey '{K2[2:]}' is invalid"),
    (f"tr(musig({X1}/<0;1>,{X2}/<0;1;2>))",
     "tr(): musig(): Multipath derivation paths have mismatched lengths"),
    (f"tr(musig({X1}/<0;1>,{X2})/<0;1>/*)",
     "tr(): musig(): Cannot have multipath participant keys if musig() is also multipath"),
]


@pytest.mark.parametrize("desc,message", BAD)
def test_bip390_and_core_invalid(desc, message):
    with pytest.raises(DescriptorError) as e:
        parse_descriptors(desc, MAIN)
    assert str(e.value) == message


def test_musig_multipath_expands_participants_or_derivation():
    both = parse_descriptors(f"tr(musig({X1}/<0;1>,{X2}/<2;3>))", MAIN)
    assert [d.to_string().split("#")[0] for d in both] == [
        f"tr(musig({X1}/0,{X2}/2))", f"tr(musig({X1}/1,{X2}/3))"]
    chains = parse_descriptors(f"tr(musig({X1},{X2})/<0;1>/*)", MAIN)
    assert [d.to_string().split("#")[0] for d in chains] == [
        f"tr(musig({X1},{X2})/0/*)", f"tr(musig({X1},{X2})/1/*)"]
    assert chains[0].expand(5) != chains[1].expand(5)


def test_musig_private_string_and_ranged_participants():
    a = ExtKey.from_seed(b"\x01" * 32)
    b = ExtKey.from_seed(b"\x02" * 32)
    text = f"tr(musig({a.serialize(REGTEST)}/0/*,{b.neuter().serialize(REGTEST)}/0/*))"
    d = parse_descriptor(text, REGTEST)
    assert d.has_private_keys() and d.is_range()
    assert d.to_string(private=True).split("#")[0] == text
    assert "tprv" not in d.to_string()
    key = d.keys[0]
    assert isinstance(key, MuSigKey) and not key.all_private()
    # ranged participants: each position aggregates the participants' children
    want = aggregate_sorted([a.derive_path([0, 7]).pubkey, b.derive_path([0, 7]).pubkey])
    assert key.derive(7).pubkey == want
    assert key.derive_secret(7) is None
    info = descriptor_info(text, REGTEST)
    assert info["hasprivatekeys"] and info["isrange"]


def test_unused_descriptor():
    x = ExtKey.from_seed(b"\x03" * 32)
    d = parse_descriptor(f"unused({x.serialize(REGTEST)})", REGTEST)
    assert not d.has_scripts() and d.expand(0) == [] and not d.is_range()
    assert d.to_string().split("#")[0] == f"unused({x.neuter().serialize(REGTEST)})"
    xpub = x.neuter().serialize(REGTEST)
    for text, message in [
        (f"unused({xpub}/*)", "unused(): key cannot be ranged"),
        (f"unused({xpub},{xpub})", "unused(): only one key expected"),
        (f"sh(unused({xpub}))", "Can only have unused at top level"),
        (f"unused(musig({xpub}))", "musig() is only allowed in tr() and rawtr()"),
    ]:
        with pytest.raises(DescriptorError) as e:
            parse_descriptor(text, REGTEST)
        assert str(e.value) == message


# Bitcoin Core's musig() cases (src/test/descriptor_tests.cpp, MIT): private form, public form,
# scripts at 0.., and whether the public form derives on its own
XPRV1 = ("xprvA1RpRA33e1JQ7ifknakTFpgNXPmW2YvmhqLQYMmrj4xJXXWYpDPS3xz7iAxn8L39njGVyuoseXzU6rcxF"
         "LJ8HFsTjSyQbLYnMpCqE2VbFWc")
HARD_PRV = ("xprv9s21ZrQH143K31xYSDQpPDxsXRTUcvj2iNHm5NUtrGiGG5e2DtALGdso3pGz6ssrdK4PFmM8NSpSBH"
            "NqPqm55Qn3LqFtT2emdEXVYsCzC2U")
HARD_PUB = ("xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4"
            "a6mr8BDzTJY47LJhkJ8UB7WEGuduB")
WIF1 = "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU74sHUHy8S"
CORE_CASES = [
    (f"rawtr(musig({XPRV1}/0/*,{X2}/0/*))", f"rawtr(musig({X1}/0/*,{X2}/0/*))",
     ["5120754ccfd18ed4051de3b1144b6145cad4b2999387338dfb85ec392f2963ceaa3a",
      "5120be80016576d2691ccc4077bc91d7ece4db34667d6e84829d5e08480cd4bc0b78",
      "5120b7139e2f8b92570ad96c40c3b5e6557a5194e288a96df6f29980523365239d58"], True),
    (f"rawtr(musig({XPRV1}/0,{X2})/1)", f"rawtr(musig({X1}/0,{X2})/1)",
     ["51200e355f2bc9e754268e12bbd337499c2f7ffafc3101c41792709007b25a862532"], True),
    (f"tr({WIF1},pk(musig({XPRV1},{X2})/0/*))", f"tr({K1[2:]},pk(musig({X1},{X2})/0/*))",
     ["512068983d461174afc90c26f3b2821d8a9ced9534586a756763b68371a404635cc8"], True),
    (f"tr(musig({XPRV1}/1,{XPRV1}/1)/2)", f"tr(musig({X1}/1,{X1}/1)/2)",
     ["5120a17ceacd6422bd5ffd9f165807b254b7d68ad39f179cc4f11545a6835227e97c"], True),
    (f"rawtr(musig({HARD_PRV}/2147483647'/0,{X2})/1)",
     f"rawtr(musig({HARD_PUB}/2147483647'/0,{X2})/1)",
     ["5120ebf2bcce516ef6567a9001ce6e5dc43a02bb62d37b51d86d773fa96dcd3a8d4c"], False),
]


@pytest.mark.parametrize("prv,pub,scripts,pub_derives", CORE_CASES)
def test_core_musig_cases(prv, pub, scripts, pub_derives):
    d = parse_descriptor(prv, MAIN)
    assert d.to_string().split("#")[0] == pub
    assert d.to_string(private=True).split("#")[0] == prv
    assert [d.expand(i)[0].hex() for i in range(len(scripts))] == scripts
    p = parse_descriptor(pub, MAIN)
    if pub_derives:
        assert [p.expand(i)[0].hex() for i in range(len(scripts))] == scripts
    else:
        with pytest.raises(DescriptorError, match="without private keys"):
            p.expand(0)


def test_core_musig_uncompressed_participant():
    unc = ("04a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd5b8dec5235a0fa87"
           "22476c7709c02559e3aa73aa03918ba2d492eea75abea235")
    with pytest.raises(DescriptorError) as e:
        parse_descriptor(f"tr(musig({unc},{X2}))", MAIN)
    assert str(e.value) == "tr(): musig(): Uncompressed keys are not allowed"
