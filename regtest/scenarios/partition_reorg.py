"""A partition, a fork on each side and the heal: the side with more work wins, and the
losing side's payment goes back to the mempools and is confirmed again.

    minibtc-net up --nodes 4 --miners 0 --detach
    minibtc-net run regtest/scenarios/partition_reorg.py

Needs 2 nodes or more (the first half against the rest) and no miner of its own making
blocks meanwhile (--miners 0), so that each side's block count is the scenario's.
"""


def run(net):
    n = len(net.nodes)
    assert n >= 2, "this scenario needs 2 nodes or more"
    left, right = list(range(n // 2)), list(range(n // 2, n))
    if net.nodes[left[0]].wallet.getbalance() < 1:
        net.mine(101, node=left[0])  # coins for the payment
    start = net.wait_for_sync()
    net.log(f"{n} nodes on {start[:16]}; partition {left} | {right}")

    net.partition(left, right)
    txid = net.send(left[0], left[-1], "1.25")
    net.wait_for_mempool(txid, nodes=left)
    net.mine(1, node=left[0])  # the payment confirmed on the left
    net.mine(2, node=right[0])  # more work on the right
    left_tip = net.wait_for_sync(nodes=left)
    right_tip = net.wait_for_sync(nodes=right)
    assert left_tip != right_tip
    net.log(f"left on {left_tip[:16]}, right on {right_tip[:16]} (one block more)")

    net.heal()
    tip = net.wait_for_sync()
    assert tip == right_tip, "the chain with the most work wins"
    net.wait_for_mempool(txid)  # back in every mempool, out of the stale block
    assert net.nodes[left[-1]].wallet.gettransaction(txid)["confirmations"] == 0
    net.log(f"healed: every node on {tip[:16]}, the payment waits again")

    net.mine(1, node=right[0])
    net.wait_for_sync()
    net.wait_until(lambda: net.nodes[left[-1]].wallet.gettransaction(txid)["confirmations"]
                   == 1, 30, "the payment confirmed again")
    net.log("the payment is confirmed on the winning chain")
