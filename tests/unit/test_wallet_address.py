"""Addresses <-> scriptPubKeys on main and regtest, Core's validateaddress answers, and WIF."""

import hashlib

import pytest

from consensus.hashes import hash160, sha256
from consensus.params import MAIN, REGTEST
from consensus.script.standard import (
    p2pkh_script,
    p2sh_script,
    p2tr_script,
    p2wpkh_script,
    p2wsh_script,
    witness_v_script,
)
from tests.conftest import load_json
from wallet.address import (
    AddressError,
    WIFError,
    address_to_script,
    decode_address,
    decode_wif,
    encode_wif,
    script_to_address,
    validate_address,
)
from wallet.base58 import b58check_decode, b58check_encode
from wallet.keys import pubkey_from_secret

CORE = load_json("core_validateaddress_main.json")


@pytest.mark.parametrize("addr,error,locations", CORE["invalid"])
def test_core_validateaddress_invalid(addr, error, locations):
    info = validate_address(addr, MAIN)
    assert not info.isvalid
    assert info.error == error
    assert info.error_locations == locations
    assert info.to_rpc() == {"isvalid": False, "error_locations": locations, "error": error}
    with pytest.raises(AddressError) as e:
        address_to_script(addr, MAIN)
    assert e.value.message == error


@pytest.mark.parametrize("addr,spk", CORE["valid"])
def test_core_validateaddress_valid(addr, spk):
    info = validate_address(addr, MAIN)
    assert info.isvalid and info.error == ""
    assert info.script_pubkey.hex() == spk
    assert info.address == addr.lower()  # canonical form is lowercase
    rpc = info.to_rpc()
    assert rpc["scriptPubKey"] == spk and rpc["iswitness"] is True
    version = 0 if spk[:2] == "00" else int(spk[:2], 16) - 0x50
    program = spk[4:]
    # Core's DescribeAddressVisitor: isscript for P2WSH, P2TR and anchors, absent for
    # unknown witness versions; anchors report no version or program.
    if spk == "51024e73":
        assert rpc["isscript"] is True and "witness_version" not in rpc
    else:
        expected = {(0, 40): False, (0, 64): True, (1, 64): True}.get((version, len(program)))
        assert rpc.get("isscript") is expected
        assert rpc["witness_version"] == version and rpc["witness_program"] == program
    assert "error" not in rpc
    assert script_to_address(bytes.fromhex(spk), MAIN) == addr.lower()


def _payload(label: str, n: int) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:n]


def _scripts():
    pk = pubkey_from_secret(b"\x01" * 32)
    return {
        "p2pkh": p2pkh_script(hash160(pk)),
        "p2sh": p2sh_script(hash160(b"\x51")),
        "p2wpkh": p2wpkh_script(hash160(pk)),
        "p2wsh": p2wsh_script(sha256(b"\x51")),
        "p2tr": p2tr_script(pk[1:]),
        "v1-2bytes": witness_v_script(1, b"\x4e\x73"),
        "v2-32": witness_v_script(2, _payload("v2", 32)),
        "v16-40": witness_v_script(16, _payload("v16", 32) + _payload("x", 8)),
    }


PREFIXES = {
    "main": {"p2pkh": "1", "p2sh": "3", "p2wpkh": "bc1q", "p2wsh": "bc1q", "p2tr": "bc1p",
             "v1-2bytes": "bc1p", "v2-32": "bc1z", "v16-40": "bc1s"},
    "regtest": {"p2pkh": ("m", "n"), "p2sh": "2", "p2wpkh": "bcrt1q", "p2wsh": "bcrt1q",
                "p2tr": "bcrt1p", "v1-2bytes": "bcrt1p", "v2-32": "bcrt1z", "v16-40": "bcrt1s"},
}


@pytest.mark.parametrize("params", [MAIN, REGTEST], ids=lambda p: p.name)
@pytest.mark.parametrize("kind", list(_scripts()))
def test_roundtrip_every_type(params, kind):
    script = _scripts()[kind]
    addr = script_to_address(script, params)
    assert addr is not None
    assert addr.startswith(PREFIXES[params.name][kind])
    assert address_to_script(addr, params) == script
    # Bech32 addresses may be given in upper case too.
    if not kind.startswith("p2pkh") and kind != "p2sh":
        assert address_to_script(addr.upper(), params) == script
    info = validate_address(addr, params)
    assert info.isvalid and info.address == addr
    assert info.iswitness == (kind not in ("p2pkh", "p2sh"))
    rpc = info.to_rpc()
    if kind in ("p2sh", "p2wsh", "p2tr", "v1-2bytes"):
        assert rpc["isscript"] is True
    elif kind.startswith("p2pkh") or kind == "p2wpkh":
        assert rpc["isscript"] is False
    else:  # unknown witness versions
        assert "isscript" not in rpc
    # The other chain rejects it.
    other = REGTEST if params is MAIN else MAIN
    assert not validate_address(addr, other).isvalid


def test_known_regtest_address():
    spk = "0014751e76e8199196d454941c45d1b3a323f1433bd6"
    assert script_to_address(bytes.fromhex(spk), REGTEST) == (
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    )


@pytest.mark.parametrize(
    "script",
    [
        "2103a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bdac",  # P2PK
        "6a0568656c6c6f",  # OP_RETURN
        "0015" + "00" * 21,  # v0 program of 21 bytes: not standard
        "5101ab",  # 1-byte v1 program
        "",
        "76a914" + "00" * 20 + "88",  # truncated P2PKH
    ],
)
def test_scripts_without_address(script):
    assert script_to_address(bytes.fromhex(script), MAIN) is None


def test_base58_errors_on_chain():
    h = bytes(range(20))
    # A regtest P2PKH on main: good checksum, unknown prefix.
    regtest_addr = b58check_encode(bytes([REGTEST.pubkey_address_prefix]) + h)
    with pytest.raises(AddressError, match=r"^Invalid or unsupported Base58-encoded address\.$"):
        decode_address(regtest_addr, MAIN)
    # Right prefix, wrong length.
    short = b58check_encode(bytes([MAIN.pubkey_address_prefix]) + h[:19])
    with pytest.raises(AddressError, match=r"^Invalid length for Base58 address \(P2PKH or P2SH"):
        decode_address(short, MAIN)
    # A broken checksum.
    good = b58check_encode(bytes([MAIN.pubkey_address_prefix]) + h)
    bad = good[:-1] + ("2" if good[-1] != "2" else "3")
    with pytest.raises(AddressError, match=r"^Invalid checksum or length of Base58 address"):
        decode_address(bad, MAIN)
    # Valid Base58Check but far too long for an address (an extended key, say).
    long_b58 = b58check_encode(b"\x04" * 78)
    with pytest.raises(AddressError, match=r"^Invalid checksum or length of Base58 address"):
        decode_address(long_b58, MAIN)
    with pytest.raises(AddressError, match=r"^Invalid or unsupported Segwit \(Bech32\) or Base58"):
        decode_address("not an address", MAIN)


def test_cross_chain_bech32_errors():
    main_addr = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    with pytest.raises(AddressError, match=r"^Invalid or unsupported Segwit \(Bech32\) or Base58"):
        decode_address(main_addr, REGTEST)
    rt = script_to_address(p2wpkh_script(b"\x11" * 20), REGTEST)
    assert rt is not None
    with pytest.raises(AddressError, match=r"expected bc, got bcrt\)\.$"):
        decode_address(rt, MAIN)


def test_regtest_bech32_checksum_error_location():
    rt = script_to_address(p2wpkh_script(b"\x11" * 20), REGTEST)
    assert rt is not None
    pos = 20
    bad = rt[:pos] + ("q" if rt[pos] != "q" else "p") + rt[pos + 1 :]
    info = validate_address(bad, REGTEST)
    assert info.error == "Invalid Bech32 checksum"
    assert info.error_locations == [pos]


# --- WIF ---

K1 = "L4rK1yDtCWekvXuE6oXD9jCYfFNV2cWRpVuPLBcCU2z8TrisoyY1"
P1 = "03a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd"
K2 = "5KYZdUEo39z3FPrtuX2QbbwGnNP5zTd7yyr2SC1j299sBCnWjss"
P2 = (
    "04a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd"
    "5b8dec5235a0fa8722476c7709c02559e3aa73aa03918ba2d492eea75abea235"
)


def test_wif_bip_keys():
    # The keys of the BIP381 vectors and their public keys.
    secret, compressed = decode_wif(K1, MAIN)
    assert compressed and pubkey_from_secret(secret).hex() == P1
    assert encode_wif(secret, MAIN) == K1
    secret2, compressed2 = decode_wif(K2, MAIN)
    assert not compressed2 and pubkey_from_secret(secret2, False).hex() == P2
    assert encode_wif(secret2, MAIN, compressed=False) == K2
    assert secret == secret2


def test_wif_regtest_roundtrip_and_prefixes():
    secret = hashlib.sha256(b"regtest key").digest()
    c = encode_wif(secret, REGTEST)
    u = encode_wif(secret, REGTEST, compressed=False)
    assert c[0] == "c" and u[0] == "9"
    assert decode_wif(c, REGTEST) == (secret, True)
    assert decode_wif(u, REGTEST) == (secret, False)
    with pytest.raises(WIFError, match="not a main private key"):
        decode_wif(c, MAIN)
    with pytest.raises(WIFError, match="not a regtest private key"):
        decode_wif(K1, REGTEST)


def test_wif_errors():
    with pytest.raises(WIFError):
        decode_wif(K1[:-1] + ("2" if K1[-1] != "2" else "3"), MAIN)
    with pytest.raises(WIFError, match="wrong length"):
        decode_wif(b58check_encode(bytes([MAIN.secret_key_prefix]) + b"\x01" * 31), MAIN)
    with pytest.raises(WIFError, match="wrong length"):
        decode_wif(b58check_encode(bytes([MAIN.secret_key_prefix]) + b"\x01" * 32 + b"\x02"), MAIN)
    with pytest.raises(WIFError, match="out of range"):
        decode_wif(b58check_encode(bytes([MAIN.secret_key_prefix]) + b"\x00" * 32), MAIN)
    with pytest.raises(WIFError):
        encode_wif(b"\x00" * 32, MAIN)
    assert b58check_decode(K1)[0] == MAIN.secret_key_prefix
