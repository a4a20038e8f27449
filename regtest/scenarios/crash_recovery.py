"""A node killed (SIGKILL) in the middle of the traffic catches up when it starts again: it
recovers its chain state, syncs the blocks it missed and its wallet sees what was paid to it
while it was down.

    minibtc-net up --nodes 3 --detach
    minibtc-net run regtest/scenarios/crash_recovery.py [NODE]

NODE (default: the last) is the node killed; it must not be node 0, which pays.
"""


def run(net):
    victim = int(net.args[0]) if net.args else len(net.nodes) - 1
    assert 0 < victim < len(net.nodes), f"NODE must be 1..{len(net.nodes) - 1}"
    payer = net.nodes[0]
    if payer.wallet.getbalance() < 2:
        net.mine(101, node=0)
    net.wait_for_sync()
    address = net.nodes[victim].address("while down")
    before = net.nodes[victim].getblockcount()

    net.log(f"kill node {victim} at height {before}")
    net.kill(victim)
    txid = payer.wallet.sendtoaddress(address, "0.5")
    net.mine(3, node=0)
    height = payer.getblockcount()
    net.log(f"paid node {victim} and mined to {height} while it was down")

    net.log(net.start(victim))
    net.wait_for_sync(timeout=90)
    assert net.nodes[victim].getblockcount() >= height
    net.wait_until(lambda: net.nodes[victim].wallet.gettransaction(txid)["confirmations"] >= 3,
                   60, f"node {victim}'s wallet sees the payment confirmed")
    net.log(f"node {victim} is back at height {net.nodes[victim].getblockcount()} with "
            "the payment")
