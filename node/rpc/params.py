"""Parsing RPC argument values with Bitcoin Core's error codes and messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from node.rpc.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_TYPE_ERROR,
    RPCError,
)
from node.rpc.jsonutil import parse_amount
from node.rpc.registry import json_type
from wallet.amounts import json_integer


def parse_hash(value: str, name: str) -> bytes:
    """ParseHashV: 64 hex characters, display order -> internal order."""
    if len(value) != 64:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} must be of length 64 (not {len(value)}, for '{value}')")
    try:
        return bytes.fromhex(value)[::-1]
    except ValueError:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} must be hexadecimal string (not '{value}')") from None


def parse_hex(value: str, name: str) -> bytes:
    """ParseHexV."""
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} must be hexadecimal string (not '{value}')") from None


def as_int(value: Any, name: str) -> int:
    """A JSON number that must be an integer (UniValue::getInt)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, float)):
        raise RPCError(RPC_TYPE_ERROR, f"JSON value of type {json_type(value)} is not of "
                       f"expected type number")
    try:
        return json_integer(value)
    except ValueError as err:
        raise RPCError(RPC_TYPE_ERROR, str(err)) from None


def as_bool_or_int(value: Any, name: str) -> int:
    """Verbosity-style arguments that Core accepts as a bool or a number."""
    if isinstance(value, bool):
        return int(value)
    return as_int(value, name)


def amount(value: Any, name: str = "amount") -> int:
    try:
        return parse_amount(value, name)
    except TypeError as e:
        raise RPCError(RPC_TYPE_ERROR, str(e)) from None
    except ValueError as e:
        raise RPCError(RPC_TYPE_ERROR, str(e)) from None


def block_not_found() -> RPCError:
    return RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
