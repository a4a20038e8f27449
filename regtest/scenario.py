"""Scenarios: Python scripts run against a live minibtc-net network (`minibtc-net run
SCRIPT.py [ARGS...]`), in the spirit of Warnet's scenarios.

A scenario is a file that defines `run(net)`; `net` is a `Scenario` (below). It fails by
raising (an `assert` is the usual way); `run` returning is success. Extra command-line
arguments are in `net.args`. Examples: regtest/scenarios/.

    def run(net):
        net.mine(101, node=0)                  # mature coins for node 0's wallet
        txid = net.send(0, 2, "1.5")           # node 0's wallet pays node 2's
        net.wait_for_mempool(txid)             # every node has it
        net.partition([0, 1], [2])             # cut the links between the groups
        net.mine(1, node=2)
        net.heal()
        net.wait_for_sync()                    # every node on one tip
        assert net.nodes[1].getblockcount() == net.nodes[2].getblockcount()
        assert net.nodes[2].wallet.getbalance() > 0

The API:
    net.nodes[i]              node i: any RPC as a method (`getblockcount()`, `getpeerinfo()`),
                              or `.rpc("method", *params)`; `.wallet` the same for its wallet
                              ("default"); `.address()` a new address of that wallet; `.index`
    net.mine(n, node=0)       mine n blocks now on a node, to its wallet; their hashes
    net.send(src, dst, amount)  pay amount BTC from node src's wallet to node dst's; the txid
    net.partition(*groups)    cut the links between groups of nodes (`[0, 1], [2, 3]`)
    net.heal()                restore every link of the topology
    net.stop(i) / start(i) / restart(i) / kill(i)   one node (kill: SIGKILL)
    net.wait_for_sync(nodes=None, timeout=60)       the nodes (default all up) on one tip
    net.wait_for_mempool(txid, nodes=None, timeout=60)   every node has the transaction
    net.wait_until(predicate, timeout=60, what="...")    poll until true, else fail
    net.log(message)          a line of output, with the time since the start
    net.args                  the arguments after SCRIPT.py
"""

from __future__ import annotations

import importlib.util
import time
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

from regtest.network import WALLET, Network, NetworkError


class ScenarioFailed(Exception):
    pass


class _RPC:
    """RPC methods as Python methods: `node.getblockcount()`, `node.wallet.getbalance()`."""

    def __init__(self, net: Network, i: int, wallet: bool) -> None:
        self._net, self._i, self._wallet = net, i, wallet

    def rpc(self, method: str, *params: Any) -> Any:
        return self._net.call(self._i, method, *params, wallet=self._wallet)

    def __getattr__(self, method: str):  # noqa: ANN204
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *params: self.rpc(method, *params)


class Node(_RPC):
    def __init__(self, net: Network, i: int) -> None:
        super().__init__(net, i, False)
        self.index = i
        self.wallet = _RPC(net, i, True)
        self.wallet_name = WALLET

    def address(self, label: str = "") -> str:
        return self.wallet.getnewaddress(label)

    def __repr__(self) -> str:
        return f"<node {self.index}>"


class Scenario:
    def __init__(self, net: Network, args: list[str] | None = None) -> None:
        self.network = net
        self.args = list(args or [])
        self.nodes = [Node(net, i) for i in range(net.spec.nodes)]
        self.started = time.monotonic()

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.2f} s] {message}", flush=True)

    def mine(self, n: int, node: int = 0) -> list[str]:
        return self.network.mine(node, n)

    def send(self, src: int, dst: int, amount: str | Decimal | float) -> str:
        return self.network.send(src, dst, Decimal(str(amount)))

    def partition(self, *groups: list[int]) -> None:
        self.network.partition([list(g) for g in groups])

    def heal(self) -> None:
        self.network.heal()

    def stop(self, i: int) -> str:
        return self.network.request("stop", i)

    def start(self, i: int) -> str:
        return self.network.request("start", i)

    def restart(self, i: int) -> str:
        return self.network.request("restart", i)

    def kill(self, i: int) -> str:
        return self.network.request("kill", i)

    def _up(self, nodes: list[int] | None) -> list[int]:
        if nodes is not None:
            return list(nodes)
        self.network.reload()
        return [i for i in range(self.network.spec.nodes)
                if str(i) not in self.network.spec.down]

    def wait_until(self, predicate, timeout: float = 60, what: str = "a condition") -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise ScenarioFailed(f"timed out after {timeout:g} s waiting for {what}")

    def wait_for_sync(self, nodes: list[int] | None = None, timeout: float = 60) -> str:
        """Wait until the nodes share one tip; that tip."""
        which = self._up(nodes)
        tips: set[str] = set()

        def same() -> bool:
            tips.clear()
            tips.update(self.nodes[i].getbestblockhash() for i in which)
            return len(tips) == 1

        self.wait_until(same, timeout, f"nodes {which} on one tip")
        return tips.pop()

    def wait_for_mempool(self, txid: str, nodes: list[int] | None = None,
                         timeout: float = 60) -> None:
        which = self._up(nodes)
        self.wait_until(lambda: all(txid in self.nodes[i].getrawmempool() for i in which),
                        timeout, f"{txid} in the mempools of nodes {which}")


def load(path: Path):  # noqa: ANN201
    """The scenario's run(net) function."""
    if not path.is_file():
        raise NetworkError(f"no scenario file {path}")
    spec = importlib.util.spec_from_file_location(f"scenario_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise NetworkError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # (its own import errors, syntax errors...)
        raise NetworkError(f"{path} did not load: {type(err).__name__}: {err}") from None
    fn = getattr(module, "run", None)
    if not callable(fn):
        raise NetworkError(f"{path} defines no run(net) function")
    return fn


def run_file(net: Network, path: Path, args: list[str]) -> tuple[bool, str]:
    """Run a scenario; (passed, what to say)."""
    fn = load(path)
    scenario = Scenario(net, args)
    try:
        fn(scenario)
    except Exception as err:  # the scenario failed: where, in its own file
        frames = [f for f in traceback.extract_tb(err.__traceback__)
                  if Path(f.filename).resolve() == path.resolve()]
        where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
        text = str(err) or type(err).__name__
        return False, f"scenario {path.name} failed{where}: {text}"
    return True, f"scenario {path.name} passed in {time.monotonic() - scenario.started:.1f} s"
