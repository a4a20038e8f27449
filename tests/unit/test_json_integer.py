"""JSON numbers read as integers: the range is checked before int() (a Decimal such as
1E+1000000 made int() build a million-digit integer, freezing the node for half a minute)."""

from decimal import Decimal

import pytest

from node.rpc.errors import RPCError
from node.rpc.params import as_int
from node.rpc.rawtransactions import _json_int
from wallet.amounts import json_integer
from wallet.errors import WalletError
from wallet.rpc import METHODS

HUGE = [Decimal("1E+1000000"), Decimal("-1E+1000000"), Decimal("9E+999999999"),
        Decimal("1E+19"), Decimal("Infinity"), Decimal("NaN"), float("inf"), float("nan"),
        Decimal("0E+1000000")]


def test_integers_in_range() -> None:
    assert json_integer(5) == 5
    assert json_integer(2**70) == 2**70  # (ints are the callers' range to check)
    assert json_integer(Decimal("1E+3")) == 1000
    assert json_integer(Decimal("-7.000")) == -7
    assert json_integer(Decimal("9.2E+18")) == 9_200_000_000_000_000_000
    assert json_integer(3.0) == 3


@pytest.mark.parametrize("value", HUGE + [Decimal("1.5"), Decimal("1E-1000000"), 0.5])
def test_out_of_range(value) -> None:
    with pytest.raises(ValueError, match="JSON integer out of range"):
        json_integer(value)
    with pytest.raises(RPCError) as err:
        as_int(value, "height")
    assert err.value.code == -3 and err.value.message == "JSON integer out of range"
    with pytest.raises(RPCError, match="JSON integer out of range"):
        _json_int(value)


@pytest.mark.parametrize("value", HUGE)
def test_wallet_arguments(value) -> None:
    with pytest.raises(WalletError) as err:
        METHODS["listtransactions"].bind(["*", value])
    assert err.value.code == -3 and "JSON integer out of range" in err.value.message
