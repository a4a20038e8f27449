"""Descriptors beyond the basic set: multipath key steps (BIP389, Core's Parse returning
several descriptors) and miniscript (BIP379) in wsh(), inferred from scripts and parsed."""

from __future__ import annotations

import re

import pytest

from consensus.hashes import hash160, sha256
from consensus.params import REGTEST
from consensus.script.standard import p2wsh_script
from wallet.descriptors import (
    DescriptorError,
    ScanObject,
    SigningProvider,
    _InferKeys,
    add_checksum,
    derive_addresses,
    descriptor_info,
    infer_descriptor,
    parse_descriptor,
    parse_descriptors,
)
from wallet.miniscript import MsContext, from_script, has
from wallet.miniscript import parse as ms_parse

TPUB = ("tpubD6NzVbkrYhZ4WaWSyoBvQwbpLkojyoTZPRsgXELWz3Popb3qkjcJyJUGLnL4qHHoQvao8ESaAstxYSnhys"
        "wJ76uZPStJRJCTKvosUCJZL5B")


def test_multipath_expands_every_key_in_step():
    desc = f"wsh(multi(1,{TPUB}/<1;2>/0/*,{TPUB}/<2;3>/0/*))"
    info = descriptor_info(desc, REGTEST)
    assert info["descriptor"] == add_checksum(f"wsh(multi(1,{TPUB}/1/0/*,{TPUB}/2/0/*))")
    assert info["multipath_expansion"] == [
        add_checksum(f"wsh(multi(1,{TPUB}/1/0/*,{TPUB}/2/0/*))"),
        add_checksum(f"wsh(multi(1,{TPUB}/2/0/*,{TPUB}/3/0/*))"),
    ]
    assert info["isrange"] is True
    assert "multipath_expansion" not in descriptor_info(f"wpkh({TPUB}/0/*)", REGTEST)


def test_multipath_derives_and_scans_each_path():
    desc = f"wpkh({TPUB}/<0;1>/*)"
    receive, change = derive_addresses(desc, REGTEST, [0, 1])
    assert receive == derive_addresses(f"wpkh({TPUB}/0/*)", REGTEST, [0, 1])
    assert change == derive_addresses(f"wpkh({TPUB}/1/*)", REGTEST, [0, 1])
    assert len(ScanObject(desc, REGTEST, 1).scripts) == 4


@pytest.mark.parametrize("desc,message", [
    (f"pkh({TPUB}/<0;1>/<2;3>)", "pkh(): Multiple multipath key path specifiers found"),
    (f"pkh([deadbeef/<0;1>]{TPUB}/0)",
     "pkh(): Key path value '<0;1>' specifies multipath in a section where multipath is not "
     "allowed"),
    (f"wpkh({TPUB}/<0>/*)", "wpkh(): Multipath key path specifiers must have at least two items"),
    (f"wpkh({TPUB}/<0;0>/*)", "wpkh(): Duplicated key path value 0 in multipath specifier"),
    (f"wsh(multi(1,{TPUB}/<0;1>/*,{TPUB}/<0;1;2>/*))",
     "Multipath derivation paths have mismatched lengths"),
])
def test_multipath_errors(desc, message):
    with pytest.raises(DescriptorError) as err:
        parse_descriptors(desc, REGTEST)
    assert str(err.value) == message


def test_single_descriptor_parsers_refuse_multipath():
    with pytest.raises(DescriptorError):
        parse_descriptor(f"wpkh({TPUB}/<0;1>/*)", REGTEST)


# --- miniscript ---------------------------------------------------------------------------------

# Core's src/test/miniscript_tests.cpp vectors: (miniscript, script, flags, ops).
# N: non-malleable, S: needs a signature, X: mixes time and height locks.
MS_VECTORS = [
    ("lltvln:after(1231488000)", "6300676300676300670400046749b1926869516868", "N", 12),
    ("uuj:and_v(v:multi(2,03d01115d548e7561b15c38f004d734633687cf4419620095bc5b0f47070afe85a,"
     "025601570cb47f238d2b0286db4a990fa0f3ba28d1a319f5e7cf55c2a2444da7cc),after(1231488000))",
     "6363829263522103d01115d548e7561b15c38f004d734633687cf4419620095bc5b0f47070afe85a21025601"
     "570cb47f238d2b0286db4a990fa0f3ba28d1a319f5e7cf55c2a2444da7cc52af0400046749b168670068670068",
     "NS", 14),
    ("or_b(un:multi(2,03daed4f2be3a8bf278e70132fb0beb7522f570e144bf615c07e996d443dee8729,"
     "024ce119c96e2fa357200b559b2f7dd5a5f02d5290aff74b03f3e471b273211c97),al:older(16))",
     "63522103daed4f2be3a8bf278e70132fb0beb7522f570e144bf615c07e996d443dee872921024ce119c96e2f"
     "a357200b559b2f7dd5a5f02d5290aff74b03f3e471b273211c9752ae926700686b63006760b2686c9b",
     "", 14),
    ("j:and_v(vdv:after(1567547623),older(2016))", "829263766304e7e06e5db169686902e007b268",
     "N", 11),
    ("or_d(sha256(38df1c1f64a24a77b23393bca50dff872e31edc4f3b5aa3b90ad0b82f4f089b6),"
     "and_n(un:after(499999999),older(4194305)))",
     "82012088a82038df1c1f64a24a77b23393bca50dff872e31edc4f3b5aa3b90ad0b82f4f089b68773646304ff"
     "64cd1db19267006864006703010040b26868", "", 16),
    ("j:and_b(multi(2,0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798,"
     "024ce119c96e2fa357200b559b2f7dd5a5f02d5290aff74b03f3e471b273211c97),"
     "s:or_i(older(1),older(4252898)))",
     "82926352210279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f8179821024ce119c9"
     "6e2fa357200b559b2f7dd5a5f02d5290aff74b03f3e471b273211c9752ae7c6351b26703e2e440b2689a68",
     "S", 14),
    ("thresh(2,multi(2,03a0434d9e47f3c86235477c7b1ae6ae5d3442d49b1943c2b752a68e2a47e247c7,"
     "036d2b085e9e382ed10b69fc311a03f8641ccfff21574de0927513a49d9a688a00),"
     "a:multi(1,036d2b085e9e382ed10b69fc311a03f8641ccfff21574de0927513a49d9a688a00),"
     "ac:pk_k(022f01e5e15cca351daff3843fb70f3c2f0a1bdd05e5af888a67784ef3e10a2a01))",
     "522103a0434d9e47f3c86235477c7b1ae6ae5d3442d49b1943c2b752a68e2a47e247c721036d2b085e9e382e"
     "d10b69fc311a03f8641ccfff21574de0927513a49d9a688a0052ae6b5121036d2b085e9e382ed10b69fc311a"
     "03f8641ccfff21574de0927513a49d9a688a0051ae6c936b21022f01e5e15cca351daff3843fb70f3c2f0a1b"
     "dd05e5af888a67784ef3e10a2a01ac6c935287", "NS", 13),
    ("c:or_i(and_v(v:older(16),pk_h(02d7924d4f7d43ea965a465ae3095ff41131e5946f3c85f79e44adbcf8"
     "e27e080e)),pk_h(026a245bf6dc698504c89a20cfded60853152b695336c28063b61c65cbd269e6b4))",
     "6360b26976a9149fc5dbe5efdce10374a4dd4053c93af540211718886776a9142fbd32c8dd59ee7c17e66cb6"
     "ebea7e9846c3040f8868ac", "NS", 12),
    ("thresh(2,c:pk_k(03d30199d74fb5a22d47b6e054e2f378cedacffcb89904a61d75d0dbd407143e65),"
     "ac:pk_k(03fff97bd5755eeea420453a14355235d382f6472f8568a18b2f057a1460297556),"
     "altv:after(1000000000),altv:after(100))",
     "2103d30199d74fb5a22d47b6e054e2f378cedacffcb89904a61d75d0dbd407143e65ac6b2103fff97bd5755e"
     "eea420453a14355235d382f6472f8568a18b2f057a1460297556ac6c936b6300670400ca9a3bb16951686c93"
     "6b6300670164b16951686c935287", "NX", 22),
    ("c:andor(u:ripemd160(6ad07d21fd5dfc646f0b30577045ce201616b9ba),pk_h(03daed4f2be3a8bf278e7"
     "0132fb0beb7522f570e144bf615c07e996d443dee8729),or_i(pk_h(022f01e5e15cca351daff3843fb70f3"
     "c2f0a1bdd05e5af888a67784ef3e10a2a01),pk_h(0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce"
     "28d959f2815b16f81798)))",
     "6382012088a6146ad07d21fd5dfc646f0b30577045ce201616b9ba87670068646376a9149652d86bedf43ad2"
     "64362e6e6eba6eb764508127886776a914751e76e8199196d454941c45d1b3a323f1433bd688686776a91420"
     "d637c1a6404d2227f3561fdbaff5a680dba6488868ac", "S", 23),
]


def _ms_keys(text: str) -> SigningProvider:
    prov = SigningProvider()
    for k in re.findall(r"0[23][0-9a-f]{64}", text):
        prov.pubkeys[hash160(bytes.fromhex(k))] = bytes.fromhex(k)
    return prov


@pytest.mark.parametrize("ms,script_hex,flags,ops", MS_VECTORS)
def test_miniscript_core_vectors(ms, script_hex, flags, ops):
    kctx = _InferKeys(_ms_keys(ms))
    node = ms_parse(ms, MsContext.P2WSH, kctx, lambda t: (bytes.fromhex(t), t))
    assert node.to_script().hex() == script_hex
    assert has(node.type, "m") == ("N" in flags)
    assert has(node.type, "s") == ("S" in flags)
    assert has(node.type, "k") == ("X" not in flags)
    assert node.ops.count + node.ops.sat.value == ops
    decoded = from_script(bytes.fromhex(script_hex), MsContext.P2WSH, kctx)
    assert decoded is not None and decoded.to_script().hex() == script_hex
    again = ms_parse(decoded.to_string(), MsContext.P2WSH, kctx,
                     lambda t: (bytes.fromhex(t), t))
    assert again.to_script().hex() == script_hex


def test_miniscript_not_decoded():
    kctx = _InferKeys(SigningProvider())
    # A non-minimal VERIFY (<key> CHECKSIG VERIFY 1), and a script that is no miniscript.
    assert from_script(bytes.fromhex("2103a0434d9e47f3c86235477c7b1ae6ae5d3442d49b1943c2b752a6"
                                     "8e2a47e247c7ac6951"), MsContext.P2WSH, kctx) is None
    assert from_script(bytes.fromhex("b2"), MsContext.P2WSH, kctx) is None
    assert from_script(bytes.fromhex("51b2"), MsContext.P2WSH, kctx).to_string() == "older(1)"


HTLC = ("82012088a914ffffffffffffffffffffffffffffffffffffffff88210250929b74c1a04954b78b4b6035e9"
        "7a5e078a5a0f28ec96d547bfee9ace803ac0ad51b2")
HTLC_DESC = ("wsh(and_v(and_v(v:hash160(ffffffffffffffffffffffffffffffffffffffff),v:pk(0250929b74"
             "c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0)),older(1)))#gm8xz4fl")


def test_miniscript_inferred_and_parsed_in_wsh():
    script = bytes.fromhex(HTLC)
    prov = SigningProvider()
    prov.scripts[hash160(script)] = script
    spk = p2wsh_script(sha256(script))
    assert infer_descriptor(spk, REGTEST, prov) == HTLC_DESC
    info = descriptor_info(HTLC_DESC, REGTEST)
    assert info["descriptor"] == HTLC_DESC and info["issolvable"] is True
    assert parse_descriptor(HTLC_DESC, REGTEST).expand() == [spk]


@pytest.mark.parametrize("desc,message", [
    ("wsh(and_v(v:older(1),older(2)))",
     "and_v(v:older(1),older(2)) is not sane: witnesses without signature exist"),
    ("sh(and_v(v:pk(0250929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0),"
     "older(1)))", "Miniscript expressions can only be used in wsh or tr."),
    ("wsh(or_b(pk(0250929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0),"
     "s:pk(0250929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0)))",
     "is not sane: contains duplicate public keys"),
])
def test_miniscript_descriptor_errors(desc, message):
    with pytest.raises(DescriptorError) as err:
        parse_descriptor(desc, REGTEST)
    assert message in str(err.value)
