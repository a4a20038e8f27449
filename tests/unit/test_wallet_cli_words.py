"""The wallet CLI's words for amounts and transaction states."""

from decimal import Decimal

from regtest.explorer import btc_text as explorer_btc_text
from wallet.amounts import btc_text, quantize_btc
from wallet.cli import _state


def test_amounts_with_eight_decimals() -> None:
    assert btc_text(0) == "0.00000000"
    assert btc_text(Decimal("0E-8")) == "0.00000000"
    assert btc_text(Decimal("1.5")) == "1.50000000"
    assert btc_text("-0.00000001") == "-0.00000001"
    assert btc_text(12.3) == "12.30000000"
    assert quantize_btc("2") == Decimal("2.00000000") and str(quantize_btc("2")) == "2.00000000"
    assert explorer_btc_text is btc_text  # (one helper: the explorer's is the wallet's)


def test_unconfirmed_in_the_mempool_only_when_known() -> None:
    assert _state({"confirmations": 0}) == "unconfirmed"
    assert _state({"confirmations": 0, "trusted": False}) == "unconfirmed"
    assert _state({"confirmations": 0, "trusted": True}) == "unconfirmed (in the mempool)"
    assert _state({"confirmations": 3}) == "3 confirmations"
    assert _state({"confirmations": -2}) == "conflicted (2 blocks deep)"
