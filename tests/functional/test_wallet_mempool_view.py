"""A wallet call looks through the node's mempool only when it changed: the node's mempool
sequence, the tip, the connection to the node and the wallet itself are what tell. An
unchanged mempool is not looked through again; each kind of change is still seen."""

from __future__ import annotations

from decimal import Decimal

import pytest

from consensus.params import REGTEST
from tests.functional.framework import NodeProcess
from wallet.nodeclient import NodeClient, NodeRPCError
from wallet.service import WalletManager
from wallet.wallet import Wallet

ELSEWHERE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
# A key no wallet here derives (the BIP32 test vector 1 master key) and its P2WPKH address.
OUTSIDE_KEY = "cVpF924EspNh8KjYsfhgY96mmxvT6DgdWiTYMtMjuM74hJaU5psW"


class FetchFailsOnce(NodeClient):
    """The real node, but once armed the next mempool transaction fetch answers an error."""

    armed = False

    def batch(self, calls):
        results = super().batch(calls)
        if self.armed and calls and calls[0][0] == "getrawtransaction":
            self.armed = False
            results[0] = NodeRPCError(-5, "No such mempool transaction")
        return results


@pytest.fixture
def net(tmp_path, monkeypatch):
    looked: list[str] = []  # the wallets whose view of the mempool was rebuilt
    real = Wallet.set_mempool

    def counting(self, txids):
        looked.append(self.name)
        return real(self, txids)

    monkeypatch.setattr(Wallet, "set_mempool", counting)
    with NodeProcess(tmp_path / "n", "-disablewallet") as node:
        client = FetchFailsOnce(node.url, cookie_file=node.chain_dir / ".cookie")
        wallets = WalletManager(tmp_path / "wallets", REGTEST, client)
        try:
            wallets.start()
            for name in ("R", "S"):
                wallets.call(None, "createwallet", [name])
            node.call("generatetoaddress", 101, wallets.call("S", "getnewaddress", []))
            yield node, client, wallets, looked
        finally:
            wallets.close()


def pending(wallets: WalletManager, name: str) -> Decimal:
    return wallets.call(name, "getbalances", [])["mine"]["untrusted_pending"]


def test_an_unchanged_mempool_is_not_looked_through_again(net):
    node, client, wallets, looked = net
    wallets.call("S", "sendtoaddress", [ELSEWHERE, "1"])  # not R's
    assert pending(wallets, "R") == 0
    looked.clear()
    for _ in range(3):
        assert pending(wallets, "R") == 0
    assert looked == []
    # A payment to R moves the mempool sequence: seen at the next call.
    wallets.call("S", "sendtoaddress", [wallets.call("R", "getnewaddress", []), "2"])
    assert pending(wallets, "R") == Decimal(2)
    assert looked.count("R") == 1
    # A block (the tip) and then an unchanged mempool again.
    node.call("generatetoaddress", 1, ELSEWHERE)
    assert wallets.call("R", "getbalances", [])["mine"]["trusted"] == Decimal(2)
    looked.clear()
    wallets.call("R", "getbalances", [])
    assert looked == []


def test_a_new_connection_to_the_node_looks_again(net):
    """A node restarted behind the wallet's back counts its mempool sequence from the start
    again: the same number over a new connection is not taken for the same mempool."""
    node, client, wallets, looked = net
    wallets.call("R", "getbalances", [])
    looked.clear()
    wallets.call("R", "getbalances", [])
    assert looked == []
    client.close()  # (what a restarted node leaves: the next call connects anew)
    wallets.call("R", "getbalances", [])
    assert looked == ["R"]


def test_a_key_imported_finds_a_mempool_payment_seen_before(net):
    """A mempool payment to a key the wallet did not have was looked at and set aside; once
    the key is imported, the same (unchanged) mempool is looked through again."""
    node, client, wallets, looked = net
    info = node.call("getdescriptorinfo", f"wpkh({OUTSIDE_KEY})")
    addr = node.call("deriveaddresses", info["descriptor"])[0]
    desc = f"wpkh({OUTSIDE_KEY})#{info['checksum']}"  # (with its private key)
    wallets.call("S", "sendtoaddress", [addr, "3"])
    assert pending(wallets, "R") == 0  # (not R's yet: set aside)
    result = wallets.call("R", "importdescriptors", [[{"desc": desc, "timestamp": "now"}]])
    assert result == [{"success": True}]
    assert pending(wallets, "R") == Decimal(3)


def test_a_transaction_that_could_not_be_read_is_looked_for_again(net):
    node, client, wallets, looked = net
    wallets.call("R", "getbalances", [])
    wallets.call("S", "sendtoaddress", [wallets.call("R", "getnewaddress", []), "2"])
    client.armed = True
    assert pending(wallets, "R") == 0  # (its fetch failed: not seen yet)
    assert client.armed is False
    assert pending(wallets, "R") == Decimal(2)  # the same mempool, looked through again
