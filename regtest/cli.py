"""minibtc-net: local test networks in one command.

    minibtc-net up [--nodes 3] [--topology line] [--miners 1] [--interval 10] [--mine-on-tx]
    minibtc-net status [--watch]          node, height, tip, peers, mempool, wallet balance
    minibtc-net partition 0,1 2,3         cut the P2P links between groups ... heal
    minibtc-net send FROM TO AMOUNT       between the nodes' wallets
    minibtc-net faucet ADDRESS AMOUNT     pay an address of yours
    minibtc-net mine N [--node I]         blocks now
    minibtc-net logs NODE [--follow]
    minibtc-net down                      stop everything `up` started

The network lives in a folder (--dir, default ~/.minibtc-net): `up` on an existing one
resumes it where it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer

from regtest.hosts import HostsError
from regtest.network import (
    TOPOLOGIES,
    MinerSpec,
    Network,
    NetworkError,
    stop_stale,
    terminate,
)
from wallet.nodeclient import NodeRPCError, NodeUnreachable

DEFAULT_DIR = Path("~/.minibtc-net")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Local minibtc test networks: nodes, miners and wallets on this machine.")

DirOpt = typer.Option(DEFAULT_DIR, "--dir", help="the network's folder")


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(1)


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        _fail(f"not an amount: {text!r} (BTC, e.g. 0.5)")
    if value <= 0 or value.as_tuple().exponent < -8:
        _fail(f"not an amount: {text!r} (BTC, more than 0, at most 8 decimals)")
    return value


# -- up / down ----------------------------------------------------------------------------------


@app.command()
def up(folder: Path = DirOpt,
       nodes: int = typer.Option(3, help="nodes in a new network"),
       topology: str = typer.Option("line", help="line, ring, star or mesh"),
       miners: int = typer.Option(1, help="miner processes (spread over the nodes)"),
       interval: float = typer.Option(10.0, help="mean seconds between a miner's blocks"),
       mine_on_tx: bool = typer.Option(False, "--mine-on-tx",
                                       help="miners also mine when a transaction waits"),
       explorer: bool = typer.Option(True, "--explorer/--no-explorer",
                                     help="serve the explorer page"),
       hosts: bool = typer.Option(False, "--hosts",
                                  help="each node in its own network namespace, with its own "
                                       "address (needs root)"),
       detach: bool = typer.Option(False, "--detach", help="run in the background")) -> None:
    """Start (or resume) the network and keep it running until Ctrl-C."""
    net = Network(folder)
    if net.read_run() is not None:
        _fail(f"the network in {net.dir} is already running (`minibtc-net down` stops it)")
    stale = net.read_run(stale=True)
    if stale is not None:  # left by a supervisor that died: stop what it left running
        stop_stale(stale)
        net.run_path.unlink(missing_ok=True)
    if net.exists:
        typer.echo(f"Resuming the network in {net.dir} ({net.spec.nodes} nodes, "
                   f"{net.spec.topology})")
    else:
        if topology not in TOPOLOGIES:
            _fail(f"unknown topology {topology!r} (one of: {', '.join(TOPOLOGIES)})")
        if miners < 0 or nodes < 1:
            _fail("--nodes must be at least 1 and --miners at least 0")
        specs = [MinerSpec(k * nodes // max(miners, 1), interval, mine_on_tx)
                 for k in range(miners)]
        if hosts:
            from regtest.hosts import available

            if available() is not None:
                _fail(available())
        try:
            net.create(nodes, topology, specs, hosts=hosts)
        except NetworkError as err:
            _fail(str(err))
        typer.echo(f"Created a {topology} network of {nodes} nodes in {net.dir}")
    if detach:
        _detach(net, explorer)
        return
    Supervisor(net, explorer).run()


def _detach(net: Network, explorer: bool) -> None:
    log = open(net.dir / "supervisor.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "regtest.cli", "up", "--dir", str(net.dir),
                             "--explorer" if explorer else "--no-explorer"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        run = net.read_run()
        if run is not None and run.get("ready"):
            typer.echo(f"Running in the background (supervisor pid {proc.pid}); "
                       f"`minibtc-net status --dir {net.dir}` shows it, `down` stops it.")
            return
        if proc.poll() is not None:
            tail = (net.dir / "supervisor.log").read_text(errors="replace")[-2000:]
            _fail(f"the network did not start:\n{tail}")
        time.sleep(0.2)
    _fail("the network did not start in 180 s")


class Supervisor:
    """Starts the nodes and miners, keeps a record of them in run.json, and stops them all
    on SIGINT/SIGTERM."""

    def __init__(self, net: Network, explorer: bool = True) -> None:
        self.net = net
        self.nodes: dict[int, subprocess.Popen] = {}
        self.miners: dict[int, subprocess.Popen] = {}
        self.stopping = False
        self.want_explorer = explorer
        self.explorer = None

    def _record(self, ready: bool) -> None:
        run = {"supervisor": os.getpid(), "ready": ready,
               "nodes": {i: p.pid for i, p in self.nodes.items()},
               "miners": {k: p.pid for k, p in self.miners.items()}}
        tmp = self.net.run_path.with_suffix(".new")
        tmp.write_text(json.dumps(run) + "\n")
        os.replace(tmp, self.net.run_path)

    def _signal(self, *_) -> None:
        self.stopping = True

    def run(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # (a closed terminal too)
            signal.signal(sig, self._signal)
        net = self.net
        try:
            self._record(False)
            if net.hosts is not None:
                net.hosts.up()
            for i in range(net.spec.nodes):
                if net.node_running(i):
                    _fail(f"node {i} (RPC port {net.spec.rpc_ports[i]}) is already running "
                          "outside this supervisor")
                self.nodes[i] = net.start_node(i)
            for i, proc in self.nodes.items():
                net.wait_ready(i, proc)
            net.connect_links()
            for k in range(len(net.spec.miners)):
                self.miners[k] = net.start_miner(k)
            if self.want_explorer:
                self._start_explorer()
            self._record(True)
            print_status(net)
            print_usage(net)
            while not self.stopping:
                time.sleep(0.2)
                for i, proc in self.nodes.items():
                    if proc.poll() is not None and not self.stopping:
                        typer.echo(f"node {i} exited ({proc.returncode}); see "
                                   f"{net.debug_log(i)}", err=True)
                        self.stopping = True
        except (NetworkError, HostsError) as err:
            typer.echo(f"error: {err}", err=True)
        finally:
            self.shutdown()

    def _start_explorer(self) -> None:
        from regtest.explorer import Explorer
        from regtest.network import free_port

        net = self.net
        if not net.spec.explorer_port:  # (a network made before the explorer existed)
            net.spec.explorer_port = free_port()
            net.spec.save(net.spec_path)
        self.explorer = Explorer(net, net.spec.explorer_port)
        self.explorer.start()
        if self.explorer.error is not None:
            typer.echo(f"warning: no explorer ({self.explorer.error})", err=True)
            self.explorer = None

    def shutdown(self) -> None:
        typer.echo("Stopping the network ...")
        if self.explorer is not None:
            self.explorer.stop()
        for proc in self.miners.values():
            terminate(proc.pid)
        for proc in self.miners.values():
            _wait(proc, 10)
        for i, proc in self.nodes.items():
            if proc.poll() is None:
                try:
                    self.net.call(i, "stop")
                except (NodeUnreachable, NodeRPCError, NetworkError):
                    terminate(proc.pid)
        for proc in self.nodes.values():
            _wait(proc, 60)
        if self.net.hosts is not None:
            self.net.hosts.down()
        self.net.run_path.unlink(missing_ok=True)
        typer.echo("Stopped.")


def _wait(proc: subprocess.Popen, timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@app.command()
def down(folder: Path = DirOpt) -> None:
    """Stop the network cleanly (nodes flush their state; `up` resumes it)."""
    net = Network(folder)
    if not net.exists:
        _fail(f"no network in {net.dir}")
    run = net.read_run()
    if run is not None:
        terminate(run["supervisor"])
        deadline = time.time() + 90
        while net.run_path.exists() and time.time() < deadline:
            time.sleep(0.2)
        if net.run_path.exists():
            _fail(f"the supervisor (pid {run['supervisor']}) did not stop in 90 s")
        typer.echo("Stopped.")
        return
    stale = net.read_run(stale=True)
    if stale is not None:  # a supervisor that died without cleaning up: its miners too
        stop_stale({"miners": stale.get("miners", {})})
        net.run_path.unlink(missing_ok=True)
    stopped = 0
    for i in range(net.spec.nodes):  # nodes left without a supervisor
        try:
            net.call(i, "stop")
            stopped += 1
        except (NodeUnreachable, NodeRPCError):
            pass
    if net.hosts is not None and net.hosts.leftovers():
        time.sleep(1)
        net.hosts.down()
    typer.echo(f"Stopped {stopped} node(s)." if stopped else "Nothing was running.")


# -- looking at it ------------------------------------------------------------------------------


def print_status(net: Network) -> None:
    rows = net.status()
    typer.echo(f"{'node':>4}  {'height':>6}  {'tip':<16}  {'peers':>5}  {'mempool':>7}  "
               f"{'balance':>16}  {'pending':>12}  {'immature':>12}")
    for r in rows:
        if not r["up"]:
            typer.echo(f"{r['node']:>4}  down ({r['error']})")
            continue
        typer.echo(f"{r['node']:>4}  {r['height']:>6}  {r['tip'][:16]:<16}  {r['peers']:>5}  "
                   f"{r['mempool']:>7}  {r['balance']:>16.8f}  {r['pending']:>12.8f}  "
                   f"{r['immature']:>12.8f}")
    spec = net.spec
    if spec.partition:
        typer.echo("partitioned: " + " | ".join(",".join(map(str, g)) for g in spec.partition))


def print_usage(net: Network) -> None:
    spec = net.spec
    d0 = net.datadir(0)
    h0 = net.host(0)
    connect = f" -rpcport={spec.rpc_ports[0]}" + (f" -rpcconnect={h0}" if h0 != "127.0.0.1"
                                                   else "")
    if spec.explorer_port:
        typer.echo(f"\nExplorer: http://127.0.0.1:{spec.explorer_port}/")
    typer.echo(f"""
Node 0: JSON-RPC {h0}:{spec.rpc_ports[0]}, P2P {net.p2p_addr(0)}, datadir {d0}
  .venv/bin/minibtc-cli -regtest -datadir={d0}{connect} getpeerinfo
  .venv/bin/minibtc-cli -regtest -datadir={d0}{connect} getnewaddress
  .venv/bin/minibtc-wallet --server http://{h0}:{spec.rpc_ports[0]} \\
      --server-cookie {d0}/regtest/.cookie balance
  .venv/bin/minibtc-net status --dir {net.dir}
      (and send FROM TO AMOUNT, faucet ADDRESS AMOUNT, mine N, partition 0 1,2, heal, logs N)
Ctrl-C here (or `minibtc-net down --dir {net.dir}`) stops the network.""")


@app.command()
def status(folder: Path = DirOpt,
           watch: bool = typer.Option(False, "--watch", help="refresh every 2 seconds"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """A table of the nodes: height, tip, peers, mempool size, wallet balances."""
    net = Network(folder)
    try:
        if as_json:
            typer.echo(json.dumps(net.status(), default=str, indent=2))
            return
        while True:
            if watch:
                typer.echo("\x1b[2J\x1b[H", nl=False)
            print_status(net)
            if not watch:
                return
            time.sleep(2)
    except NetworkError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        pass


@app.command()
def logs(node: int, folder: Path = DirOpt,
         follow: bool = typer.Option(False, "--follow", "-f"),
         lines: int = typer.Option(40, "--lines", "-n")) -> None:
    """A node's debug.log (the last lines, or following it)."""
    net = Network(folder)
    try:
        net.check_node(node)
    except NetworkError as err:
        _fail(str(err))
    path = net.debug_log(node)
    if not path.exists():
        _fail(f"{path} does not exist yet")
    with open(path, errors="replace") as f:
        for line in f.readlines()[-lines:]:
            typer.echo(line, nl=False)
        try:
            while follow:
                line = f.readline()
                if line:
                    typer.echo(line, nl=False)
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass


# -- acting on it ----------------------------------------------------------------------------------


def _do(fn):
    try:
        return fn()
    except NetworkError as err:
        _fail(str(err))
    except NodeUnreachable as err:
        _fail(f"{err} (is the network up?)")
    except NodeRPCError as err:
        _fail(f"the node refused: {err}")


@app.command()
def partition(groups: list[str], folder: Path = DirOpt) -> None:
    """Cut the P2P links between groups of nodes, e.g. `partition 0,1 2,3`."""
    try:
        parsed = [[int(x) for x in g.split(",") if x != ""] for g in groups]
    except ValueError:
        _fail("groups are comma-separated node numbers, e.g. 0,1 2,3")
    net = Network(folder)
    _do(lambda: net.partition(parsed))
    typer.echo("partitioned: " + " | ".join(",".join(map(str, g)) for g in net.spec.partition))


@app.command()
def heal(folder: Path = DirOpt) -> None:
    """Restore every link of the topology."""
    net = Network(folder)
    _do(net.heal)
    typer.echo("healed")


@app.command()
def send(src: int, dst: int, amount: str, folder: Path = DirOpt) -> None:
    """Pay AMOUNT BTC from node SRC's wallet to a new address of node DST's wallet."""
    net = Network(folder)
    txid = _do(lambda: net.send(src, dst, _amount(amount)))
    typer.echo(txid)


@app.command()
def faucet(address: str, amount: str, folder: Path = DirOpt) -> None:
    """Pay AMOUNT BTC to ADDRESS from the richest node wallet."""
    net = Network(folder)
    i, txid = _do(lambda: net.faucet(address, _amount(amount)))
    typer.echo(f"{txid} (from node {i})")


@app.command()
def mine(n: int, folder: Path = DirOpt,
         node: int = typer.Option(0, "--node", help="the node that mines (to its wallet)")
         ) -> None:
    """Mine N blocks now on a node, paying its wallet."""
    if n < 1:
        _fail("mine at least one block")
    net = Network(folder)
    hashes = _do(lambda: net.mine(node, n))
    typer.echo(f"mined {len(hashes)} block(s) on node {node}, tip {hashes[-1]}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
