"""Addresses <-> scriptPubKeys and WIF private keys, with Bitcoin Core's rules and messages.

Decoding follows Core's DecodeDestination (src/key_io.cpp, v28): the error strings are the
ones validateaddress returns in "error", and Bech32 failures carry "error_locations".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.params import ChainParams
from consensus.script.script import is_p2pkh, is_p2sh, witness_program
from consensus.script.standard import (
    PAY_TO_ANCHOR,
    p2pkh_script,
    p2sh_script,
    witness_v_script,
)
from wallet.base58 import Base58Error, b58check_decode, b58check_encode, b58decode
from wallet.bech32 import (
    Bech32Error,
    Encoding,
    bech32_decode,
    convertbits,
    encode_segwit_address,
)
from wallet.keys import is_valid_secret

WITNESS_V0_KEYHASH_SIZE = 20
WITNESS_V0_SCRIPTHASH_SIZE = 32


class AddressError(ValueError):
    """An address that does not decode; message and `locations` are what Core reports."""

    def __init__(self, message: str, locations: list[int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.locations = locations or []


class WIFError(ValueError):
    """A string that is not a WIF private key for the given chain."""


# --- destinations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """What an address pays to: kind is pubkeyhash, scripthash or witness (version/program)."""

    kind: str
    payload: bytes
    witness_version: int | None = None

    @property
    def script(self) -> bytes:
        if self.kind == "pubkeyhash":
            return p2pkh_script(self.payload)
        if self.kind == "scripthash":
            return p2sh_script(self.payload)
        assert self.witness_version is not None
        return witness_v_script(self.witness_version, self.payload)


def _bytes_str(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


def decode_address(addr: str, params: ChainParams) -> Destination:
    """Decode an address for params' chain, raising AddressError with Core's message."""
    hrp = params.bech32_hrp
    # Strings that start with this chain's HRP are only tried as Bech32 (a Base58 string could
    # share the prefix, but then Core reports the Bech32 error, and so do we).
    is_bech32 = addr[: len(hrp)].lower() == hrp
    if not is_bech32:
        try:
            data = b58check_decode(addr, 21)
        except Base58Error:
            try:
                b58decode(addr, 100)
            except Base58Error:
                raise AddressError(
                    "Invalid or unsupported Segwit (Bech32) or Base58 encoding."
                ) from None
            raise AddressError(
                "Invalid checksum or length of Base58 address (P2PKH or P2SH)"
            ) from None
        pubkey_prefix = bytes([params.pubkey_address_prefix])
        script_prefix = bytes([params.script_address_prefix])
        if len(data) == 21 and data[:1] == pubkey_prefix:
            return Destination("pubkeyhash", data[1:])
        if len(data) == 21 and data[:1] == script_prefix:
            return Destination("scripthash", data[1:])
        if data[:1] in (pubkey_prefix, script_prefix):
            raise AddressError("Invalid length for Base58 address (P2PKH or P2SH)")
        raise AddressError("Invalid or unsupported Base58-encoded address.")

    try:
        enc, got_hrp, values = bech32_decode(addr)
    except Bech32Error as e:
        raise AddressError(e.message, e.locations) from None
    if not values:
        raise AddressError("Empty Bech32 data section")
    if got_hrp != hrp:
        raise AddressError(
            "Invalid or unsupported prefix for Segwit (Bech32) address "
            f"(expected {hrp}, got {got_hrp})."
        )
    version = values[0]
    if version == 0 and enc is not Encoding.BECH32:
        raise AddressError("Version 0 witness address must use Bech32 checksum")
    if version != 0 and enc is not Encoding.BECH32M:
        raise AddressError("Version 1+ witness address must use Bech32m checksum")
    program = convertbits(values[1:], 5, 8, False)
    if program is None:
        raise AddressError("Invalid padding in Bech32 data section")
    size = len(program)
    if version == 0:
        if size in (WITNESS_V0_KEYHASH_SIZE, WITNESS_V0_SCRIPTHASH_SIZE):
            return Destination("witness", bytes(program), 0)
        raise AddressError(
            f"Invalid Bech32 v0 address program size ({_bytes_str(size)}), per BIP141"
        )
    if version > 16:
        raise AddressError("Invalid Bech32 address witness version")
    if not 2 <= size <= 40:
        raise AddressError(f"Invalid Bech32 address program size ({_bytes_str(size)})")
    return Destination("witness", bytes(program), version)


def address_to_script(addr: str, params: ChainParams) -> bytes:
    """The scriptPubKey an address pays to. Raises AddressError (Core's message)."""
    return decode_address(addr, params).script


def is_valid_address(addr: str, params: ChainParams) -> bool:
    try:
        decode_address(addr, params)
    except AddressError:
        return False
    return True


def encode_destination(dest: Destination, params: ChainParams) -> str:
    if dest.kind == "pubkeyhash":
        return b58check_encode(bytes([params.pubkey_address_prefix]) + dest.payload)
    if dest.kind == "scripthash":
        return b58check_encode(bytes([params.script_address_prefix]) + dest.payload)
    assert dest.witness_version is not None
    return encode_segwit_address(params.bech32_hrp, dest.witness_version, dest.payload)


def script_to_destination(script: bytes) -> Destination | None:
    """The destination of a standard scriptPubKey, as Core's ExtractDestination finds it.

    P2PK and bare multisig have no address; a v0 program of another size than 20 or 32 bytes
    is not standard and has none either.
    """
    if is_p2pkh(script):
        return Destination("pubkeyhash", bytes(script[3:23]))
    if is_p2sh(script):
        return Destination("scripthash", bytes(script[2:22]))
    wp = witness_program(script)
    if wp is None:
        return None
    version, program = wp
    if version == 0 and len(program) not in (20, 32):
        return None
    return Destination("witness", bytes(program), version)


def script_to_address(script: bytes, params: ChainParams) -> str | None:
    """The address of a scriptPubKey, or None when it has none (P2PK, multisig, OP_RETURN...)."""
    dest = script_to_destination(script)
    return None if dest is None else encode_destination(dest, params)


@dataclass
class AddressInfo:
    """validateaddress's answer: on success the fields Core returns, else error(+locations)."""

    isvalid: bool
    address: str = ""
    script_pubkey: bytes = b""
    isscript: bool | None = False  # None: not reported (unknown witness versions)
    iswitness: bool = False
    witness_version: int | None = None
    witness_program: bytes | None = None
    error: str = ""
    error_locations: list[int] = field(default_factory=list)

    def to_rpc(self) -> dict:
        """The JSON object of Core's validateaddress RPC."""
        if not self.isvalid:
            return {
                "isvalid": False,
                "error_locations": self.error_locations,
                "error": self.error,
            }
        out: dict = {
            "isvalid": True,
            "address": self.address,
            "scriptPubKey": self.script_pubkey.hex(),
        }
        if self.isscript is not None:
            out["isscript"] = self.isscript
        out["iswitness"] = self.iswitness
        if self.witness_version is not None:
            out["witness_version"] = self.witness_version
            assert self.witness_program is not None
            out["witness_program"] = self.witness_program.hex()
        return out




def validate_address(addr: str, params: ChainParams) -> AddressInfo:
    """Everything Core's validateaddress needs; the address is re-encoded canonically."""
    try:
        dest = decode_address(addr, params)
    except AddressError as e:
        return AddressInfo(False, error=e.message, error_locations=e.locations)
    # Core's DescribeAddressVisitor: which fields each kind of destination reports.
    isscript: bool | None = dest.kind == "scripthash"
    version = program = None
    if dest.kind == "witness":
        v, prog = dest.witness_version, dest.payload
        if dest.script == PAY_TO_ANCHOR:
            isscript = True  # pay-to-anchor: no version/program fields
        else:
            version, program = v, prog
            if v == 0:
                isscript = len(prog) == 32
            elif v == 1 and len(prog) == 32:
                isscript = True  # taproot
            else:
                isscript = None  # unknown witness version: Core leaves isscript out
    return AddressInfo(
        True,
        address=encode_destination(dest, params),
        script_pubkey=dest.script,
        isscript=isscript,
        iswitness=dest.kind == "witness",
        witness_version=version,
        witness_program=program,
    )


# --- WIF private keys ---------------------------------------------------------------------------

def encode_wif(secret: bytes, params: ChainParams, compressed: bool = True) -> str:
    if not is_valid_secret(secret):
        raise WIFError("private key must be 32 bytes in 1..n-1")
    return b58check_encode(
        bytes([params.secret_key_prefix]) + secret + (b"\x01" if compressed else b"")
    )


def decode_wif(wif: str, params: ChainParams) -> tuple[bytes, bool]:
    """(32-byte secret, compressed) of a WIF key for params' chain; WIFError otherwise."""
    try:
        data = b58check_decode(wif, 34)
    except Base58Error as e:
        raise WIFError(f"Invalid private key encoding: {e}") from None
    if not data or data[0] != params.secret_key_prefix:
        raise WIFError(f"Invalid private key encoding: not a {params.name} private key")
    body = data[1:]
    if len(body) == 33 and body[32] == 1:
        secret, compressed = body[:32], True
    elif len(body) == 32:
        secret, compressed = body, False
    else:
        raise WIFError("Invalid private key encoding: wrong length")
    if not is_valid_secret(secret):
        raise WIFError("Invalid private key: out of range")
    return bytes(secret), compressed
