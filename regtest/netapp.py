"""minibtc-net's commands (typer); regtest/cli.py is the entry point, which answers
`minibtc-net cli N ...` without loading this.

minibtc-net: local test networks in one command.

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
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer

from regtest.hosts import HostsError
from regtest.network import (
    DEFAULT_SERVICES,
    TOPOLOGIES,
    WALLET,
    MinerSpec,
    Network,
    NetworkError,
    stop_stale,
    terminate,
)
from wallet.jsonrpc import dumps
from wallet.nodeclient import NodeRPCError, NodeUnreachable

DEFAULT_DIR = Path("~/.minibtc-net")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Local minibtc test networks: nodes, miners and wallets on this machine.")

DirOpt = typer.Option(DEFAULT_DIR, "--dir", help="the network's folder")


def say(msg: str = "", err: bool = False, nl: bool = True) -> None:
    """typer.echo that survives an output gone (a closed pipe or terminal): from then on
    everything goes to /dev/null, and the caller carries on (stopping what it started)."""
    try:
        typer.echo(msg, err=err, nl=nl)
    except OSError:
        _silence()


_gone = [False]  # our output broke (say() found it so): the supervisor stops


def _silence() -> None:
    _gone[0] = True
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        try:
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)


def _fail(msg: str) -> None:
    say(f"error: {msg}", err=True)
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


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)  # (click's ParameterSource, vendored by typer)
    return getattr(source, "name", "") == "COMMANDLINE"


@app.command()
def up(ctx: typer.Context,
       folder: Path = DirOpt,
       nodes: int = typer.Option(3, help="nodes in a new network (more on an existing one: "
                                 "adds them)"),
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
       delay: str = typer.Option("", metavar="TIME", help="--hosts: every link's delay, each "
                                 "way (100ms)"),
       jitter: str = typer.Option("", metavar="TIME", help="--hosts: the delay's variation "
                                  "(20ms)"),
       loss: str = typer.Option("", metavar="PERCENT", help="--hosts: packets lost (1%)"),
       rate: str = typer.Option("", metavar="RATE", help="--hosts: bandwidth (1mbit)"),
       services: str = typer.Option(DEFAULT_SERVICES, metavar="LIST",
                                    help="beside each service node: esplora, electrum, rest, "
                                         "zmq, cbf (comma-separated; none for none)"),
       service_nodes: str = typer.Option("0", metavar="NODES",
                                         help="the nodes with services: 0,2 or all"),
       detach: bool = typer.Option(False, "--detach", help="run in the background")) -> None:
    """Start (or resume) the network and keep it running until Ctrl-C."""
    net = Network(folder)
    link_opts = {"delay": delay, "jitter": jitter, "loss": loss, "rate": rate}
    if topology not in TOPOLOGIES:
        _fail(f"unknown topology {topology!r} (one of: {', '.join(TOPOLOGIES)})")
    if miners < 0 or nodes < 1:
        _fail("--nodes must be at least 1 and --miners at least 0")
    running = net.read_run() is not None
    if running:
        _start_down_nodes(ctx, net)
        return
    stale = net.read_run(stale=True)
    if stale is not None:  # left by a supervisor that died: stop what it left running
        stop_stale(stale)
        net.run_path.unlink(missing_ok=True)
    if net.exists:
        _resume(ctx, net, nodes, topology, miners, interval, mine_on_tx, hosts)
        if _given(ctx, "services") or _given(ctx, "service_nodes"):
            try:
                _set_services(net, services, service_nodes)
            except NetworkError as err:
                _fail(str(err))
            say("  services: " + (", ".join(f"node {i}: {', '.join(v)}" for i, v in
                                            net.spec.services.items()) or "none"))
        if any(_given(ctx, k) for k in link_opts):
            try:
                net.set_link_defaults(link_opts)
            except (NetworkError, HostsError) as err:
                _fail(str(err))
            say("  " + (net.describe_links()[0] if net.spec.link_defaults
                        else "links: no default conditions"))
    else:
        specs = [MinerSpec(k * nodes // max(miners, 1), interval, mine_on_tx)
                 for k in range(miners)]
        if hosts:
            from regtest.hosts import available

            if available() is not None:
                _fail(available())
        if any(link_opts.values()) and not hosts:
            _fail("--delay/--jitter/--loss/--rate need --hosts (they apply between the "
                  "nodes' network namespaces)")
        try:
            net.create(nodes, topology, specs, hosts=hosts)
            net.set_link_defaults(link_opts)
            _set_services(net, services, service_nodes)
        except (NetworkError, HostsError) as err:
            net.spec_path.unlink(missing_ok=True)  # (nothing half-made left behind)
            _fail(str(err))
        say(f"Created a {topology} network of {nodes} nodes in {net.dir}")
    if detach:
        _detach(net, explorer)
        return
    Supervisor(net, explorer).run()


def _set_services(net: Network, names: str, nodes: str) -> None:
    wanted = [] if names.strip().lower() in ("", "none") else [
        n.strip().lower() for n in names.split(",") if n.strip()]
    if nodes.strip().lower() == "all":
        which = list(range(net.spec.nodes))
    else:
        try:
            which = [int(x) for x in nodes.split(",") if x.strip()]
        except ValueError:
            raise NetworkError(f"--service-nodes {nodes!r}: node numbers such as 0,2, or "
                               "all") from None
    if "electrum" in wanted:
        from regtest.electrum import electrumx_available

        if not electrumx_available():
            raise NetworkError("the electrum service needs ElectrumX: pip install "
                               "'minibtc[electrum]' (the e-x package)")
    net.set_services(wanted, which)


def _changes(ctx: typer.Context, net: Network, nodes: int, topology: str, miners: int,
             interval: float, mine_on_tx: bool, hosts: bool) -> list[str]:
    """What the options given ask to change in the existing network; the changes it can make
    are made (to network.json), the others named in the lines returned."""
    with net.edit() as spec:
        notes = []
        if _given(ctx, "hosts") and hosts != spec.hosts:
            made = "with" if spec.hosts else "without"
            notes.append(f"not changed: --hosts (this network was made {made} it; use another "
                         "--dir)")
        if _given(ctx, "nodes") and nodes != spec.nodes:
            if nodes < spec.nodes:
                notes.append(f"not changed: it keeps its {spec.nodes} nodes (nodes are never "
                             "removed; use another --dir for a smaller network)")
            else:
                added = net.add_nodes(nodes - spec.nodes)
                notes.append(f"added node(s) {', '.join(map(str, added))}: now {spec.nodes} nodes")
        if _given(ctx, "topology") and topology != spec.topology:
            notes.append(f"topology: {topology} (was {spec.topology})")
            spec.topology = topology
        if any(_given(ctx, n) for n in ("miners", "interval", "mine_on_tx")):
            count = miners if _given(ctx, "miners") else len(spec.miners)
            old = spec.miners[0] if spec.miners else MinerSpec(0, 10.0)
            every = interval if _given(ctx, "interval") else old.interval
            on_tx = mine_on_tx if _given(ctx, "mine_on_tx") else old.on_tx
            new = [MinerSpec(k * spec.nodes // max(count, 1), every, on_tx) for k in range(count)]
            if new != spec.miners:
                notes.append(f"miners: {count}, a block every {every:g} s each"
                             + (", and on waiting transactions" if on_tx else ""))
                spec.miners = new
    return notes


def _resume(ctx: typer.Context, net: Network, nodes: int, topology: str, miners: int,
            interval: float, mine_on_tx: bool, hosts: bool) -> None:
    try:
        notes = _changes(ctx, net, nodes, topology, miners, interval, mine_on_tx, hosts)
    except NetworkError as err:
        _fail(str(err))
    say(f"Resuming the network in {net.dir} ({net.spec.nodes} nodes, {net.spec.topology})")
    for line in notes:
        say(f"  {line}")


def _start_down_nodes(ctx: typer.Context, net: Network) -> None:
    """`up` on a running network: start its nodes that are down; say what it cannot change."""
    given = [n for n in ("nodes", "topology", "miners", "interval", "mine_on_tx", "hosts",
                         "delay", "jitter", "loss", "rate", "services", "service_nodes")
             if _given(ctx, n)]
    down = sorted(int(i) for i in net.spec.down)
    if given:
        names = ", ".join("--" + g.replace("_", "-") for g in given)
        say(f"The network in {net.dir} is running: options ({names}) "
            "change it only when it starts (`minibtc-net down`, then `up` with them)",
            err=True)
    if not down:
        _fail(f"the network in {net.dir} is already running, every node up "
              "(`minibtc-net down` stops it)")
    for i in down:
        try:
            say(net.request("start", i))
        except NetworkError as err:
            _fail(str(err))


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
            net.reload()
            say(status_text(net))
            say(usage_text(net, detached=True))
            say(f"\nRunning in the background (supervisor pid {proc.pid}).")
            return
        if proc.poll() is not None:
            tail = (net.dir / "supervisor.log").read_text(errors="replace")[-2000:]
            _fail(f"the network did not start:\n{tail}")
        time.sleep(0.2)
    _fail("the network did not start in 180 s")


class _Stop(Exception):
    """A signal during start-up: stop at once."""


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return "stopped" if code == 0 else f"exited with code {code}"


def _output_gone() -> bool:
    """Is our stdout a pipe nobody reads any more, or a terminal that hung up?"""
    if _gone[0]:
        return True
    try:
        mode = os.fstat(1).st_mode
    except OSError:
        return True
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(1)):
        return False  # a file (--detach's log) or /dev/null
    p = select.poll()
    p.register(1, 0)  # errors and hang-ups only
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in p.poll(0))


class Supervisor:
    """Starts the nodes and miners, keeps a record of them in run.json, marks a node that
    exits as down (the others keep running), carries out the per-node requests of
    `stop/start/restart/kill N`, and stops everything it started when it is told to
    (SIGINT, SIGTERM, SIGHUP: Ctrl-C, `down`, a closed terminal) or its output is gone."""

    def __init__(self, net: Network, explorer: bool = True) -> None:
        self.net = net
        self.nodes: dict[int, subprocess.Popen] = {}
        self.miners: dict[int, subprocess.Popen] = {}
        self.stopping = False
        self.starting = True
        self.why = ""
        self.want_explorer = explorer
        self.explorer = None
        self.lock = threading.RLock()
        self.busy: dict[int, str] = {}  # nodes a request is stopping or starting
        self.electrum: dict[int, object] = {}  # node -> its ElectrumService
        self._emu_check_at = 0.0  # (when to look at the link emulator next)
        self._emu_reported = 0  # (the pid of a dead one already reported)

    def _record(self, ready: bool = True) -> None:
        with self.lock:
            run = {"supervisor": os.getpid(), "ready": ready,
                   "nodes": {i: p.pid for i, p in self.nodes.items() if p.poll() is None},
                   "miners": {k: p.pid for k, p in self.miners.items()}}
            tmp = self.net.run_path.with_suffix(".new")
            tmp.write_text(json.dumps(run) + "\n")
            os.replace(tmp, self.net.run_path)

    def _signal(self, signum, _frame) -> None:  # noqa: ANN001
        if self.stopping:
            return
        self.stopping = True
        self.why = signal.Signals(signum).name
        if self.starting:
            raise _Stop

    def _mark(self, i: int, down: str | None) -> None:
        """network.json's record of node i: down (and why), or up."""
        with self.lock, self.net.edit() as spec:
            if down is None:
                spec.down.pop(str(i), None)
            else:
                spec.down[str(i)] = down

    def _start_node(self, i: int) -> subprocess.Popen:
        """Start node i; no signal lands between the process and its record."""
        blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            with self.lock:
                proc = self.net.start_node(i)
                self.nodes[i] = proc
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return proc

    def run(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # (a closed terminal too)
            signal.signal(sig, self._signal)
        net = self.net
        try:
            self._record(False)
            for left in net.control_dir.glob("*") if net.control_dir.is_dir() else ():
                left.unlink(missing_ok=True)  # (requests nobody answered before: not now)
            if net.hosts is not None:
                net.hosts.up()
            for i in range(net.spec.nodes):
                if net.node_running(i):
                    raise NetworkError(f"node {i} (RPC port {net.spec.rpc_ports[i]}) is "
                                       "already running outside this supervisor")
                self._start_node(i)
            for i, proc in self.nodes.items():
                net.wait_ready(i, proc)
                self._mark(i, None)
            net.connect_links()
            net.apply_links()  # (--hosts mode's link conditions)
            self._start_electrum()
            for k in range(len(net.spec.miners)):
                self.miners[k] = net.start_miner(k)
            if self.want_explorer:
                self._start_explorer()
            self._record(True)
            say(status_text(net))
            say(usage_text(net))
            self.starting = False
            while not self.stopping:
                time.sleep(0.2)
                self._check_nodes()
                self._check_link_emulator()
                self._take_requests()
                if _output_gone():
                    self.why = "its output is gone"
                    self.stopping = True
        except _Stop:
            pass
        except (NetworkError, HostsError) as err:
            say(f"error: {err}", err=True)
        finally:
            self.starting = False
            self.shutdown()

    def _start_electrum(self) -> None:
        """ElectrumX beside each node that has the electrum service (a failure is a warning:
        the network runs without it)."""
        from regtest.electrum import ElectrumError, ElectrumService

        net = self.net
        for i in range(net.spec.nodes):
            port = net.service_port(i, "electrum")
            if port is None:
                continue
            svc = ElectrumService(net.datadir(i), net.spec.rpc_ports[i],
                                  net.datadir(i) / "regtest" / ".cookie", port,
                                  net.datadir(i) / "electrumx", rpc_host=net.host(i))
            try:
                svc.start(timeout=300)
                self.electrum[i] = svc
            except ElectrumError as err:
                say(f"warning: no Electrum server beside node {i}: {err}", err=True)

    def _check_nodes(self) -> None:
        with self.lock:
            for i, proc in list(self.nodes.items()):
                if proc.poll() is None or i in self.busy or self.stopping:
                    continue
                del self.nodes[i]
                why = f"{_exit_text(proc.returncode)} at {time.strftime('%H:%M:%S')}"
                self._mark(i, why)
                self._record(True)
                say(f"node {i} {why}; the others keep running (`minibtc-net start {i}` "
                    f"starts it again; its log: {self.net.debug_log(i)})", err=True)

    def _check_link_emulator(self) -> None:
        """Say once when the userspace link emulator exited on its own (its links fall back
        to eth0, without conditions)."""
        if not self.net.spec.hosts or time.monotonic() < self._emu_check_at:
            return
        self._emu_check_at = time.monotonic() + 1
        emu = self.net.link_emulator()
        if emu is None or emu["running"] or emu.get("stopping"):
            return
        if emu["pid"] != self._emu_reported:
            self._emu_reported = emu["pid"]
            say(_emulator_line(emu), err=True)

    def _take_requests(self) -> None:
        d = self.net.control_dir
        if not d.is_dir():
            return
        for req in sorted(d.glob("*.req")):
            taken = req.with_suffix(".taken")
            try:
                os.replace(req, taken)
                body = json.loads(taken.read_text())
            except (OSError, ValueError):
                continue
            threading.Thread(target=self._answer, args=(taken, body), daemon=True).start()

    def _answer(self, taken: Path, body: dict) -> None:
        op, i = body.get("op"), body.get("node")
        try:
            if not isinstance(i, int) or not 0 <= i < self.net.spec.nodes:
                raise NetworkError(f"no node {i}")
            if op in ("stop", "kill"):
                reply = {"result": self._stop_one(i, op == "kill")}
            elif op == "start":
                reply = {"result": self._start_one(i)}
            elif op == "restart":
                with self.lock:
                    running = i in self.nodes and self.nodes[i].poll() is None
                if running:
                    self._stop_one(i, False)
                reply = {"result": self._start_one(i).replace("started", "restarted")}
            else:
                raise NetworkError(f"unknown request {op!r}")
        except (NetworkError, HostsError, NodeRPCError, NodeUnreachable) as err:
            reply = {"error": str(err)}
        except Exception as err:  # (answered all the same: the caller waits for it)
            reply = {"error": f"{type(err).__name__}: {err}"}
        done = taken.with_suffix(".done")
        tmp = taken.with_suffix(".tmp")
        tmp.write_text(json.dumps(reply))
        os.replace(tmp, done)
        taken.unlink(missing_ok=True)

    def _stop_one(self, i: int, kill: bool) -> str:
        with self.lock:
            proc = self.nodes.get(i)
            if proc is None or proc.poll() is not None:
                raise NetworkError(f"node {i} is not running")
            if i in self.busy:
                raise NetworkError(f"node {i} is busy ({self.busy[i]})")
            self.busy[i] = "being killed" if kill else "stopping"
        try:
            if kill:
                terminate(proc.pid, signal.SIGKILL)
            else:
                try:
                    self.net.call(i, "stop")
                except (NodeUnreachable, NodeRPCError):
                    terminate(proc.pid)
            _wait(proc, 60)
        finally:
            with self.lock:
                self.nodes.pop(i, None)
                self.busy.pop(i, None)
                why = ("killed (SIGKILL, `minibtc-net kill`)" if kill
                       else "stopped (`minibtc-net stop`)")
                self._mark(i, f"{why} at {time.strftime('%H:%M:%S')}")
                self._record(True)
        return f"node {i} {'killed' if kill else 'stopped'}"

    def _start_one(self, i: int) -> str:
        with self.lock:
            if self.stopping:
                raise NetworkError("the network is stopping")
            if i in self.busy:
                raise NetworkError(f"node {i} is busy ({self.busy[i]})")
            if i in self.nodes and self.nodes[i].poll() is None:
                raise NetworkError(f"node {i} is already running")
            self.busy[i] = "starting"
            proc = self.net.start_node(i)
            self.nodes[i] = proc
            self._record(True)
        try:
            self.net.wait_ready(i, proc)
            self.net.connect_links(only=i)
            self._mark(i, None)
            svc = self.electrum.get(i)
            if svc is not None:  # (the node's new cookie)
                svc.refresh_auth()
        finally:
            with self.lock:
                self.busy.pop(i, None)
        return f"node {i} started (height {self.net.call(i, 'getblockcount')})"

    def _start_explorer(self) -> None:
        from regtest.explorer import Explorer
        from regtest.network import free_port

        net = self.net
        if not net.spec.explorer_port:  # (a network made before the explorer existed)
            with net.edit() as spec:
                spec.explorer_port = spec.explorer_port or free_port()
        self.explorer = Explorer(net, net.spec.explorer_port)
        self.explorer.start()
        if self.explorer.error is not None:
            say(f"warning: no explorer ({self.explorer.error})", err=True)
            self.explorer = None

    def shutdown(self) -> None:
        """Stop all it started; each step on its own, so that one failing (an output gone,
        a node that does not answer) leaves none of the others undone."""
        self.stopping = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # (a second Ctrl-C must not cut this short)
        say("Stopping the network" + (f" ({self.why})" if self.why else "") + " ...")
        steps = []
        if self.explorer is not None:
            steps.append(self.explorer.stop)
        steps += [svc.stop for svc in self.electrum.values()]
        with self.lock:
            miners, nodes = list(self.miners.values()), dict(self.nodes)
        steps += [lambda p=p: terminate(p.pid) for p in miners]
        steps += [lambda p=p: _wait(p, 10) for p in miners]
        for i, proc in nodes.items():
            steps.append(lambda i=i, p=proc: self._stop_at_shutdown(i, p))
        steps += [lambda p=p: _wait(p, 60) for p in nodes.values()]
        if self.net.hosts is not None:
            steps.append(self.net.hosts.down)
        steps.append(lambda: self.net.run_path.unlink(missing_ok=True))
        for step in steps:
            try:
                step()
            except Exception as err:  # noqa: BLE001
                say(f"warning: while stopping: {err}", err=True)
        say("Stopped.")

    def _stop_at_shutdown(self, i: int, proc: subprocess.Popen) -> None:
        if proc.poll() is not None:
            return
        try:
            self.net.call(i, "stop")
        except (NodeUnreachable, NodeRPCError, NetworkError, OSError):
            terminate(proc.pid)


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
            time.sleep(0.1)
        if net.run_path.exists():
            _fail(f"the supervisor (pid {run['supervisor']}) did not stop in 90 s")
        say("Stopped.")
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
    say(f"Stopped {stopped} node(s)." if stopped else "Nothing was running.")


# -- looking at it ------------------------------------------------------------------------------


def _rpc_addr(url: str) -> str:
    return url.split("://", 1)[-1]


def status_text(net: Network, rows: list[dict] | None = None) -> str:
    rows = net.status() if rows is None else rows
    spec = net.spec
    services = sorted({k for r in rows for k in spec.services.get(str(r["node"]), {})})
    head = (f"{'node':>4}  {'height':>6}  {'tip':<16}  {'peers':>5}  {'mempool':>7}  "
            f"{'balance':>16}  {'pending':>12}  {'immature':>12}  {'rpc':<21}  {'p2p':<21}")
    lines = [head + "".join(f"  {s}" for s in services)]
    for r in rows:
        ends = f"  {_rpc_addr(r['rpc']):<21}  {r['p2p']:<21}" + "".join(
            f"  {r.get(s, '-')}" for s in services)
        if not r["up"]:
            lines.append(f"{r['node']:>4}  {'down':<87}{ends}")
            lines.append(f"      ({r['error']})")
            continue
        lines.append(f"{r['node']:>4}  {r['height']:>6}  {r['tip'][:16]:<16}  {r['peers']:>5}  "
                     f"{r['mempool']:>7}  {r['balance']:>16.8f}  {r['pending']:>12.8f}  "
                     f"{r['immature']:>12.8f}{ends}")
    if spec.partition:
        lines.append("partitioned: " + " | ".join(",".join(map(str, g))
                                                  for g in spec.partition))
    for line in _link_lines(net):
        lines.append(line)
    if spec.explorer_port and net.read_run() is not None:
        lines.append(f"explorer: {explorer_url(net)}")
    return "\n".join(line.rstrip() for line in lines)


def _link_lines(net: Network) -> list[str]:
    lines = net.describe_links()
    emu = net.link_emulator() if net.spec.hosts else None
    if emu is not None and not emu.get("stopping"):
        lines.append(_emulator_line(emu))
    return lines


def _emulator_line(emu: dict) -> str:
    if emu["running"]:
        return (f"links emulated in userspace (no tc netem here): regtest.linkemu pid "
                f"{emu['pid']}, log {emu['log']}")
    return (f"warning: the link emulator (pid {emu['pid']}) is not running: the links have "
            f"NO conditions now (its log: {emu['log']}; `minibtc-net link ...` sets them again)")


def _dir_opt(net: Network) -> str:
    return "" if net.dir == DEFAULT_DIR.expanduser() else f" --dir {net.dir}"


def explorer_url(net: Network) -> str:
    return f"http://127.0.0.1:{net.spec.explorer_port}/"


def usage_text(net: Network, detached: bool = False) -> str:
    spec = net.spec
    lines = [""]
    for i in range(spec.nodes):
        e = net.endpoints(i)
        extra = "".join(f", {k} {v}" for k, v in spec.services.get(str(i), {}).items())
        lines.append(f"Node {i}: JSON-RPC {_rpc_addr(e['rpc'])}, P2P {e['p2p']}{extra}, "
                     f"datadir {e['datadir']}")
    d = _dir_opt(net)
    lines.append(f"""
  .venv/bin/minibtc-net cli 0{d} getpeerinfo           (minibtc-cli against node 0)
  .venv/bin/minibtc-net wallet 1{d} balance            (minibtc-wallet against node 1)
  .venv/bin/minibtc-net status{d}
      (and send FROM TO AMOUNT, faucet ADDRESS AMOUNT, mine N, partition 0 1,2, heal,
       stop/start/restart/kill N, logs N)""")
    lines.append(f"`minibtc-net down{d}` stops the network." if detached else
                 f"Ctrl-C here (or `minibtc-net down{d}`) stops the network.")
    return "\n".join(lines)


def _not_running(net: Network) -> bool:
    """No supervisor, and no node answers (a node left by a supervisor that died does)."""
    if net.read_run() is not None:
        return False
    net.rpc_timeout = 2

    def answers(i: int) -> bool:
        return net.node_running(i)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(net.spec.nodes, 16)) as pool:
        return not any(pool.map(answers, range(net.spec.nodes)))


def status_json(net: Network) -> dict:
    running = not _not_running(net)
    out: dict = {"dir": str(net.dir), "running": running,
                 "explorer": explorer_url(net) if running and net.spec.explorer_port else None,
                 "topology": net.spec.topology, "partition": net.spec.partition,
                 "link_defaults": net.spec.link_defaults,
                 "link_conditions": net.spec.link_conditions,
                 "link_emulator": net.link_emulator() if net.spec.hosts else None}
    rows = net.status() if running else [
        {"node": i, **net.endpoints(i), "up": False, "error": "not running"}
        for i in range(net.spec.nodes)]
    out["nodes"] = rows
    return out


@app.command()
def status(folder: Path = DirOpt,
           watch: bool = typer.Option(False, "--watch", help="refresh every 2 seconds"),
           as_json: bool = typer.Option(False, "--json", help="as JSON (amounts as numbers)")
           ) -> None:
    """Every node's height, tip, peers, mempool size, wallet balances and endpoints."""
    net = Network(folder)
    try:
        net.spec  # noqa: B018  (no network: says so)
        if as_json:
            say(dumps(status_json(net), indent=2))
            return
        while True:
            text = (f"The network in {net.dir} is not running (`minibtc-net up{_dir_opt(net)}` "
                    "starts it)." if _not_running(net) else status_text(net))
            if watch:
                say("\x1b[2J\x1b[H", nl=False)
            say(text)
            if not watch:
                return
            time.sleep(2)
            net.reload()
    except NetworkError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        pass


# -- one node -------------------------------------------------------------------------------------


def _node_op(op: str, node: int, folder: Path) -> None:
    net = Network(folder)
    try:
        say(net.request(op, node))
    except NetworkError as err:
        _fail(str(err))


@app.command()
def stop(node: int, folder: Path = DirOpt) -> None:
    """Stop node NODE cleanly; the others keep running (`start NODE` brings it back)."""
    _node_op("stop", node, folder)


@app.command()
def start(node: int, folder: Path = DirOpt) -> None:
    """Start node NODE again (it was stopped, killed or exited), with its links."""
    _node_op("start", node, folder)


@app.command()
def restart(node: int, folder: Path = DirOpt) -> None:
    """Stop node NODE cleanly and start it again."""
    _node_op("restart", node, folder)


@app.command()
def kill(node: int, folder: Path = DirOpt) -> None:
    """Kill node NODE with SIGKILL (to test its crash recovery: `start NODE` after)."""
    _node_op("kill", node, folder)


_PASS = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=_PASS)
def cli(ctx: typer.Context, node: int, folder: Path = DirOpt) -> None:
    """minibtc-cli against node NODE (its wallet as -rpcwallet): `cli 1 getbalances`."""
    net = Network(folder)
    try:
        net.check_node(node)
    except NetworkError as err:
        _fail(str(err))
    from node.cli import main as cli_main

    argv = ["-regtest", f"-datadir={net.datadir(node)}", f"-rpcport={net.spec.rpc_ports[node]}",
            f"-rpcconnect={net.host(node)}", f"-rpcwallet={WALLET}", *ctx.args]
    raise typer.Exit(cli_main(argv) or 0)


@app.command(context_settings=_PASS)
def wallet(ctx: typer.Context, node: int, folder: Path = DirOpt) -> None:
    """minibtc-wallet against node NODE's wallet server (its mounted wallets):
    `wallet 1 balance`, `wallet 0 send ADDRESS 1.5`."""
    net = Network(folder)
    try:
        net.check_node(node)
    except NetworkError as err:
        _fail(str(err))
    from wallet.cli import main as wallet_main

    e = net.endpoints(node)
    wallet_main(["--server", e["rpc"], "--server-cookie", e["cookie"], *ctx.args])


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
            say(line, nl=False)
        try:
            while follow:
                line = f.readline()
                if line:
                    say(line, nl=False)
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass


# -- acting on it ----------------------------------------------------------------------------------


def _do(fn):
    try:
        return fn()
    except (NetworkError, HostsError) as err:
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
    say("partitioned: " + " | ".join(",".join(map(str, g)) for g in net.spec.partition))


@app.command()
def heal(folder: Path = DirOpt) -> None:
    """Restore every link of the topology."""
    net = Network(folder)
    _do(net.heal)
    say("healed")


@app.command()
def link(a: int = typer.Argument(..., metavar="A", help="a node"),
         b: int = typer.Argument(..., metavar="B", help="another node"),
         delay: str = typer.Option("", metavar="TIME", help="each way, e.g. 100ms"),
         jitter: str = typer.Option("", metavar="TIME", help="the delay's variation, 20ms"),
         loss: str = typer.Option("", metavar="PERCENT", help="packets lost, e.g. 1%"),
         rate: str = typer.Option("", metavar="RATE", help="bandwidth, e.g. 1mbit"),
         clear: bool = typer.Option(False, "--clear", help="no conditions on this link"),
         folder: Path = DirOpt) -> None:
    """Conditions on the link between nodes A and B (--hosts mode, as Warnet's; tc netem, or
    a userspace emulator where the kernel has no sch_netem):
    `link 0 1 --delay 100ms --loss 1%`; `link 0 1 --clear`, or `heal` for every link."""
    cond = {"delay": delay, "jitter": jitter, "loss": loss, "rate": rate}
    if not clear and not any(cond.values()):
        _fail("give --delay, --jitter, --loss or --rate (or --clear)")
    net = Network(folder)
    try:
        net.set_link(a, b, None if clear else cond)
    except (NetworkError, HostsError) as err:
        _fail(str(err))
    key = f"{min(a, b)}-{max(a, b)}"
    say(next(line for line in net.describe_links() if line.startswith(f"link {key}:")))


@app.command()
def send(src: int, dst: int, amount: str, folder: Path = DirOpt) -> None:
    """Pay AMOUNT BTC from node SRC's wallet to a new address of node DST's wallet."""
    net = Network(folder)
    txid = _do(lambda: net.send(src, dst, _amount(amount)))
    say(txid)


@app.command()
def faucet(address: str, amount: str, folder: Path = DirOpt) -> None:
    """Pay AMOUNT BTC to ADDRESS from the richest node wallet."""
    net = Network(folder)
    i, txid = _do(lambda: net.faucet(address, _amount(amount)))
    say(f"{txid} (from node {i})")


@app.command()
def mine(n: int, folder: Path = DirOpt,
         node: int = typer.Option(0, "--node", help="the node that mines (to its wallet)")
         ) -> None:
    """Mine N blocks now on a node, paying its wallet."""
    if n < 1:
        _fail("mine at least one block")
    net = Network(folder)
    hashes = _do(lambda: net.mine(node, n))
    say(f"mined {len(hashes)} block(s) on node {node}, tip {hashes[-1]}")


@app.command(context_settings=_PASS)
def run(ctx: typer.Context,
        script: Path = typer.Argument(..., metavar="SCRIPT.py",  # noqa: B008
                                      help="a scenario: a Python file defining run(net)"),
        folder: Path = DirOpt) -> None:
    """Run a scenario against the running network (its API: regtest/scenario.py; examples in
    regtest/scenarios/). Arguments after SCRIPT.py are the scenario's (net.args)."""
    from regtest.scenario import run_file

    net = Network(folder)
    try:
        net.spec  # noqa: B018
        if net.read_run() is None:
            raise NetworkError(f"the network in {net.dir} is not running (`minibtc-net "
                               f"up{_dir_opt(net)} --detach` starts it)")
        passed, text = run_file(net, script, list(ctx.args))
    except NetworkError as err:
        _fail(str(err))
    say(text, err=not passed)
    raise typer.Exit(0 if passed else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
