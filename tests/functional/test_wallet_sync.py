"""The wallet following a real node while blocks come in the middle of its sync: a block
that confirms one of the wallet's mempool transactions, mined between the wallet following
the chain and reading the mempool, must not make that transaction (its spend, its change)
disappear."""

from __future__ import annotations

from decimal import Decimal

from consensus.params import REGTEST
from tests.functional.framework import NodeProcess
from wallet.nodeclient import NodeClient
from wallet.service import WalletManager

ELSEWHERE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"


class BlockBeforeMempool(NodeClient):
    """The real node, but once armed a block is mined just before the mempool is read."""

    armed = False

    def batch(self, calls):
        if self.armed and calls and calls[0][0] == "getrawmempool":
            self.armed = False
            self.call("generatetoaddress", 1, ELSEWHERE)
        return super().batch(calls)


def test_block_between_chain_and_mempool_reads(tmp_path):
    with NodeProcess(tmp_path / "n", "-disablewallet") as node:
        client = BlockBeforeMempool(node.url, cookie_file=node.chain_dir / ".cookie")
        wallets = WalletManager(tmp_path / "wallets", REGTEST, client)
        try:
            wallets.start()
            wallets.call(None, "createwallet", ["R"])
            node.call("generatetoaddress", 101, wallets.call("R", "getnewaddress", []))
            assert wallets.call("R", "getbalance", []) == Decimal(50)
            txid = wallets.call("R", "sendtoaddress", [ELSEWHERE, "1"])
            fee = -wallets.call("R", "gettransaction", [txid])["fee"]
            client.armed = True
            # the call syncs first: the block (with the payment) comes mid-sync
            assert wallets.call("R", "getbalance", []) == Decimal(100) - 1 - fee
            assert client.armed is False  # (the block really came then)
            assert wallets.call("R", "gettransaction", [txid])["confirmations"] == 1
        finally:
            wallets.close()
