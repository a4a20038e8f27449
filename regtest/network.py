"""A local test network kept in a folder: N minibtcd nodes wired in a topology, a wallet on
each (the node's mounted default wallet), and miner processes.

Folder layout:

    network.json     what the network is: nodes, topology, ports, miners, partition
    run.json         while it runs: the supervisor's and every process's pid
    node<i>/         each node's datadir (chain data in node<i>/regtest/, debug.log there)
    miner<j>.log     each miner's output

`up` is the supervisor: it starts what is not running, waits, and stops everything it
started on Ctrl-C (or when `down` signals it). The other commands only talk to the nodes
over JSON-RPC, from any terminal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

from wallet.amounts import btc_text, quantize_btc
from wallet.nodeclient import NodeClient, NodeRPCError, NodeUnreachable

TOPOLOGIES = ("line", "ring", "star", "mesh")
# Services beside a node: its Esplora API, an ElectrumX server, Core's REST interface, ZMQ
# notifications (every topic on one address) and BIP157 compact block filters served to peers.
SERVICES = ("esplora", "electrum", "rest", "zmq", "cbf")
DEFAULT_SERVICES = "esplora,rest,zmq,cbf"  # everything that needs no other program
ESPLORA_PORT = 3002  # regtest's (electrs's), used by every node in --hosts mode
ZMQ_PORT = 28332  # the port Core's docs use, for every node in --hosts mode
ZMQ_TOPICS = ("hashblock", "hashtx", "rawblock", "rawtx", "sequence")
RPC_PORT, P2P_PORT = 18443, 18444  # regtest's, used by every node in --hosts mode
WALLET = "default"  # the wallet each node of the network has (ensure_wallet)


class NetworkError(Exception):
    """Something the user must fix (a bad argument, a network that is not there...)."""


def edges(topology: str, n: int) -> list[tuple[int, int]]:
    """(i, j): node i dials node j, for each link of the topology."""
    if topology == "line":
        return [(i, i - 1) for i in range(1, n)]
    if topology == "ring":
        return [(i, i - 1) for i in range(1, n)] + ([(n - 1, 0)] if n > 2 else [])
    if topology == "star":
        return [(i, 0) for i in range(1, n)]
    if topology == "mesh":
        return [(i, j) for i in range(1, n) for j in range(i)]
    raise NetworkError(f"unknown topology {topology!r} (one of: {', '.join(TOPOLOGIES)})")


_handed_out: set[int] = set()


PORT_RANGE_ENV = "MINIBTC_PORT_RANGE"  # e.g. "20000-23999": where free_port picks


def _port_range() -> tuple[int, int]:
    low, high = 20_000, 32_000
    spec = os.environ.get(PORT_RANGE_ENV, "")
    if spec:
        try:
            a, b = (int(x) for x in spec.split("-"))
        except ValueError:
            raise NetworkError(f"{PORT_RANGE_ENV}={spec!r}: expected LOW-HIGH, e.g. "
                               f"20000-23999") from None
        if not 1024 <= a < b <= 65535:
            raise NetworkError(f"{PORT_RANGE_ENV}={spec!r}: expected 1024 <= LOW < HIGH "
                               f"<= 65535")
        low, high = a, b + 1
    return low, high


def free_port() -> int:
    """A port nobody listens on, below the kernel's ephemeral range (32768 and up on Linux),
    so that outgoing connections, which take their local ports from that range, never grab
    it before a node binds it; never the same one twice in this process. Random, so
    networks side by side rarely meet; MINIBTC_PORT_RANGE=LOW-HIGH keeps them apart for
    sure (the test suite gives each of its parallel workers a range of its own, as two
    processes probing the same range can both find a port free before either binds it)."""
    low, high = _port_range()
    tries = 0
    while True:
        tries += 1
        if tries % 1000 == 0:  # the range handed out: the ports of nodes long gone are
            _handed_out.clear()  # free again (the bind below still checks each)
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


@dataclass
class MinerSpec:
    node: int
    interval: float  # mean seconds between blocks; 0 = none on a timer
    on_tx: bool = False


@dataclass
class Spec:
    nodes: int
    topology: str
    rpc_ports: list[int]
    p2p_ports: list[int]
    miners: list[MinerSpec] = field(default_factory=list)
    partition: list[list[int]] | None = None  # groups currently cut apart
    explorer_port: int = 0  # the explorer page (0: none)
    hosts: bool = False  # each node in a network namespace of its own (regtest/hosts.py)
    # nodes that exited while the network ran (node number as text -> why, and when), kept
    # by the supervisor; a node started again leaves it
    down: dict[str, str] = field(default_factory=dict)
    # services beside each node (node number as text -> name -> URL): electrum, esplora
    services: dict[str, dict[str, str]] = field(default_factory=dict)
    # --hosts mode's link conditions (tc netem, or the userspace emulator where the kernel
    # has no sch_netem: regtest/linkemu.py): defaults for every link of the topology
    # (`up --delay ...`), and per link "A-B" (`link A B ...`; {} = none, whatever the default)
    link_defaults: dict[str, str] = field(default_factory=dict)
    link_conditions: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Spec:
        d = json.loads(path.read_text())
        d["miners"] = [MinerSpec(**x) for x in d.get("miners", [])]
        return cls(**d)

    def save(self, path: Path) -> None:
        """Written whole under a temporary name of its own, then renamed over the file:
        readers see the old or the new one, and two writers never share a temporary file.
        (Read-modify-save goes through Network.edit, which also takes the lock.)"""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(asdict(self), indent=2) + "\n")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class Network:
    def __init__(self, folder: Path) -> None:
        self.dir = Path(folder).expanduser()
        self.spec_path = self.dir / "network.json"
        self.run_path = self.dir / "run.json"
        self._spec: Spec | None = None
        self._editing = 0  # depth of edit() blocks in progress (they nest)
        self.rpc_timeout = 120.0  # seconds a node may take to answer a call

    # -- description ---------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.spec_path.exists()

    @property
    def spec(self) -> Spec:
        if self._spec is None:
            if not self.exists:
                raise NetworkError(f"no network in {self.dir} (start one with `up`)")
            self._spec = Spec.load(self.spec_path)
        return self._spec

    def reload(self) -> None:
        """Read network.json again (other processes change it: partition, heal)."""
        self._spec = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """network.json.lock held (fcntl.flock, exclusive): one writer at a time, across
        processes (the supervisor, partition, heal, link, up)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "network.json.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def edit(self) -> Iterator[Spec]:
        """network.json read afresh, changed in the block and written back, all under the
        lock, so that no writer loses another's change; nested blocks share the outer one's
        read and write. If the block raises, nothing is written (and the next read rereads)."""
        if self._editing:
            yield self.spec
            return
        with self._locked():
            self._editing += 1
            try:
                self.reload()
                spec = self.spec
                yield spec
                spec.save(self.spec_path)
            except BaseException:
                self._spec = None
                raise
            finally:
                self._editing -= 1

    def create(self, nodes: int, topology: str, miners: list[MinerSpec],
               hosts: bool = False) -> Spec:
        if nodes < 1:
            raise NetworkError("a network needs at least one node")
        edges(topology, nodes)  # (checks the name)
        for m in miners:
            if not 0 <= m.node < nodes:
                raise NetworkError(f"miner on node {m.node}: there are nodes 0..{nodes - 1}")
        self.dir.mkdir(parents=True, exist_ok=True)
        if hosts:  # every node on its own address, with the standard ports
            rpc, p2p = [RPC_PORT] * nodes, [P2P_PORT] * nodes
        else:
            rpc, p2p = [free_port() for _ in range(nodes)], [free_port() for _ in range(nodes)]
        spec = Spec(nodes, topology, rpc, p2p, miners, explorer_port=free_port(), hosts=hosts)
        with self._locked():
            spec.save(self.spec_path)
        self._spec = spec
        return spec

    def set_services(self, names: list[str], nodes: list[int]) -> None:
        """The services beside the given nodes (none beside the others), each with its URL;
        ports are kept for a service a node had already."""
        for name in names:
            if name not in SERVICES:
                raise NetworkError(f"unknown service {name!r} (one of: {', '.join(SERVICES)})")
        for i in nodes:
            self.check_node(i)
        with self.edit() as spec:
            old = spec.services
            new: dict[str, dict[str, str]] = {}
            for i in nodes:
                have = old.get(str(i), {})
                urls = {}
                for name in names:
                    if name in have:
                        urls[name] = have[name]
                    elif name == "esplora":
                        port = ESPLORA_PORT if spec.hosts else free_port()
                        urls[name] = f"http://{self.host(i)}:{port}"
                    elif name == "rest":  # (on the node's RPC port)
                        urls[name] = f"http://{self.host(i)}:{spec.rpc_ports[i]}/rest/"
                    elif name == "zmq":
                        port = ZMQ_PORT if spec.hosts else free_port()
                        urls[name] = f"tcp://{self.host(i)}:{port}"
                    elif name == "cbf":  # (filters served to P2P peers)
                        urls[name] = self.p2p_addr(i)  # (what a light client is given)
                    else:  # ElectrumX runs on this side, next to the supervisor
                        urls[name] = f"tcp://127.0.0.1:{free_port()}"
                if urls:
                    new[str(i)] = urls
            spec.services = new

    def service_port(self, i: int, name: str) -> int | None:
        url = self.spec.services.get(str(i), {}).get(name)
        return int(url.rsplit(":", 1)[1].split("/")[0]) if url else None

    def add_nodes(self, k: int) -> list[int]:
        """k more nodes (the topology's links take them in when the network starts)."""
        with self.edit() as spec:
            new = list(range(spec.nodes, spec.nodes + k))
            for _ in new:
                spec.rpc_ports.append(RPC_PORT if spec.hosts else free_port())
                spec.p2p_ports.append(P2P_PORT if spec.hosts else free_port())
            spec.nodes += k
        return new

    @property
    def hosts(self):
        """The namespaces of --hosts mode, or None."""
        if not self.spec.hosts:
            return None
        from regtest.hosts import Hosts

        return Hosts(self.dir, self.spec.nodes)

    def host(self, i: int) -> str:
        """The address node i listens on."""
        hosts = self.hosts
        return hosts.addr(i) if hosts is not None else "127.0.0.1"

    def datadir(self, i: int) -> Path:
        return self.dir / f"node{i}"

    def debug_log(self, i: int) -> Path:
        return self.datadir(i) / "regtest" / "debug.log"

    def client(self, i: int, wallet: bool = False, timeout: float = 120) -> NodeClient:
        spec = self.spec
        self.check_node(i)
        path = f"/wallet/{WALLET}" if wallet else "/"
        return NodeClient(f"http://{self.host(i)}:{spec.rpc_ports[i]}{path}",
                          cookie_file=self.datadir(i) / "regtest" / ".cookie", timeout=timeout)

    def call(self, i: int, method: str, *params, wallet: bool = False):
        return self.client(i, wallet, self.rpc_timeout).call(method, *params)

    def check_node(self, i: int) -> None:
        if not 0 <= i < self.spec.nodes:
            raise NetworkError(f"no node {i}: this network has nodes 0..{self.spec.nodes - 1}")

    def links(self) -> list[tuple[int, int]]:
        """The topology's links that the partition (if any) has not cut."""
        spec = self.spec
        group = {}
        for g, members in enumerate(spec.partition or []):
            for i in members:
                group[i] = g
        return [(i, j) for i, j in edges(spec.topology, spec.nodes)
                if group.get(i, -1) == group.get(j, -1) or not spec.partition]

    def p2p_addr(self, i: int) -> str:
        return f"{self.host(i)}:{self.spec.p2p_ports[i]}"

    # -- processes ---------------------------------------------------------------------------

    def node_args(self, i: int) -> list[str]:
        spec = self.spec
        args = [sys.executable, "-m", "node.daemon", "-regtest", f"-datadir={self.datadir(i)}",
                f"-rpcport={spec.rpc_ports[i]}", f"-port={spec.p2p_ports[i]}",
                f"-bind={self.host(i)}", "-printtoconsole=0", "-fallbackfee=0.0002"]
        esplora = self.service_port(i, "esplora")
        if esplora is not None:
            args += [f"-esplora={esplora}", f"-esplorabind={self.host(i)}"]
        if self.service_port(i, "electrum") is not None:  # (what ElectrumX asks the node for)
            args += ["-txindex", "-txospenderindex"]
        services = self.spec.services.get(str(i), {})
        if "rest" in services:
            args.append("-rest")
        if "zmq" in services:
            where = f"tcp://{self.host(i)}:{self.service_port(i, 'zmq')}"
            args += [f"-zmqpub{topic}={where}" for topic in ZMQ_TOPICS]
        if "cbf" in services:
            args += ["-blockfilterindex=1", "-peerblockfilters=1"]
        hosts = self.hosts
        if hosts is not None:  # reachable from the host's side of the bridge
            args = hosts.wrap(i, args + [f"-rpcbind={hosts.addr(i)}",
                                         f"-rpcallowip={hosts.cidr}"])
        # Links are made with addnode at run time (so partition/heal can change them).
        return args

    def node_running(self, i: int) -> bool:
        try:
            self.call(i, "getblockcount")
            return True
        except (NodeUnreachable, NodeRPCError):
            return False

    def start_node(self, i: int) -> subprocess.Popen:
        self.datadir(i).mkdir(parents=True, exist_ok=True)
        out = open(self.datadir(i) / "stdout.log", "ab")
        return subprocess.Popen(self.node_args(i), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def wait_ready(self, i: int, proc: subprocess.Popen | None, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc is not None and proc.poll() is not None:
                tail = (self.datadir(i) / "stdout.log").read_text(errors="replace")[-2000:]
                raise NetworkError(f"node {i} exited with {proc.returncode}:\n{tail}")
            try:
                self.call(i, "getblockcount")
            except (NodeUnreachable, NodeRPCError):
                time.sleep(0.1)
                continue
            self.ensure_wallet(i)
            return
        raise NetworkError(f"node {i} did not become ready in {timeout:.0f} s")

    def ensure_wallet(self, i: int) -> None:
        """minibtcd loads no wallet unless asked (as Core): the network gives every node its
        WALLET, created at first start and loaded on each start after (load_on_startup)."""
        if WALLET in self.call(i, "listwallets"):
            return
        try:
            self.call(i, "loadwallet", WALLET, True)
        except NodeRPCError as err:
            if err.code != -18:  # -18: no such wallet yet
                raise
            # (wallet_name, disable_private_keys, blank, passphrase, avoid_reuse, descriptors,
            #  load_on_startup)
            self.call(i, "createwallet", WALLET, False, False, "", False, True, True)

    def connect_links(self, only: int | None = None) -> None:
        """addnode every uncut link (kept connected by the dialling node); a node that is
        down is left out (its links are made again when it starts). With `only`: the links
        of that node."""
        for i, j in self.links():
            if only is not None and only not in (i, j):
                continue
            try:
                self.call(i, "addnode", self.p2p_addr(j), "add")
            except NodeRPCError as err:
                if err.code != -23:  # already added
                    raise
            except NodeUnreachable:
                pass  # i is down: its links are made again when it starts

    def miner_args(self, k: int, address: str) -> list[str]:
        m = self.spec.miners[k]
        args = [sys.executable, "-m", "regtest.miner",
                "--rpc", f"http://{self.host(m.node)}:{self.spec.rpc_ports[m.node]}",
                "--cookie", str(self.datadir(m.node) / "regtest" / ".cookie"),
                "--address", address, "--interval", str(m.interval), "--tag", f"miner{k}"]
        return args + (["--on-tx"] if m.on_tx else []) + ["--exit-with-parent"]

    def start_miner(self, k: int) -> subprocess.Popen:
        m = self.spec.miners[k]
        address = self.call(m.node, "getnewaddress", f"miner{k}", wallet=True)
        out = open(self.dir / f"miner{k}.log", "ab")
        return subprocess.Popen(self.miner_args(k, address), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def read_run(self, stale: bool = False) -> dict | None:
        """run.json while its supervisor lives (with stale=True also a dead one's, whose
        processes may still run)."""
        try:
            run = json.loads(self.run_path.read_text())
        except (OSError, ValueError):
            return None
        if not stale and not _alive(run.get("supervisor", -1), SUPERVISOR_MARKERS):
            return None  # a supervisor that died: nothing is managed any more
        return run

    # -- per-node control, through the supervisor ------------------------------------------

    @property
    def control_dir(self) -> Path:
        return self.dir / "control"

    def request(self, op: str, node: int, timeout: float = 180) -> str:
        """Ask the running supervisor to stop, start, restart or kill node `node` (it owns
        the node processes); its answer, or NetworkError with why not."""
        self.check_node(node)
        if self.read_run() is None:
            raise NetworkError(f"the network in {self.dir} is not running "
                               f"(`minibtc-net up --dir {self.dir}` starts it)")
        self.control_dir.mkdir(exist_ok=True)
        name = f"{os.getpid()}-{time.monotonic_ns()}"
        tmp = self.control_dir / f"{name}.tmp"
        tmp.write_text(json.dumps({"op": op, "node": node}))
        os.replace(tmp, self.control_dir / f"{name}.req")
        done = self.control_dir / f"{name}.done"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if done.exists():
                reply = json.loads(done.read_text())
                done.unlink(missing_ok=True)
                if reply.get("error"):
                    raise NetworkError(reply["error"])
                return reply["result"]
            if self.read_run() is None:
                raise NetworkError("the supervisor stopped before it answered")
            time.sleep(0.05)
        raise NetworkError(f"the supervisor did not answer in {timeout:.0f} s")

    # -- operations ----------------------------------------------------------------------------

    def partition(self, groups: list[list[int]]) -> None:
        seen: set[int] = set()
        for g in groups:
            for i in g:
                self.check_node(i)
                if i in seen:
                    raise NetworkError(f"node {i} is in two groups")
                seen.add(i)
        rest = [i for i in range(self.spec.nodes) if i not in seen]
        if rest:
            groups = groups + [rest]  # the nodes not named make a group of their own
        with self.edit() as spec:
            before = set(self.links())
            spec.partition = groups
        for i, j in before - set(self.links()):
            self._cut(i, j)
        self.connect_links()  # (links the new groups keep, cut by an earlier partition)

    def _cut(self, i: int, j: int) -> None:
        """Remove the link i -> j at the P2P level: no longer added, and disconnected."""
        for method, args in (("addnode", (self.p2p_addr(j), "remove")),
                             ("disconnectnode", (self.p2p_addr(j),))):
            try:
                self.call(i, method, *args)
            except NodeRPCError as err:
                if err.code not in (-24, -29):  # not added / not connected
                    raise

    def heal(self) -> None:
        """Every link of the topology back, and no link conditions left."""
        with self.edit() as spec:
            had_conditions = bool(spec.link_conditions or spec.link_defaults)
            spec.partition = None
            spec.link_conditions = {}
            spec.link_defaults = {}
        self.connect_links()
        if had_conditions and self.read_run() is not None:
            self.apply_links()

    # -- link conditions (--hosts mode) ----------------------------------------------------

    def conditions(self) -> dict[tuple[int, int], dict[str, str]]:
        """Each link's conditions: the defaults on the topology's links, then the ones set
        on a link."""
        spec = self.spec
        out: dict[tuple[int, int], dict[str, str]] = {}
        if spec.link_defaults:
            for i, j in edges(spec.topology, spec.nodes):
                out[(min(i, j), max(i, j))] = dict(spec.link_defaults)
        for key, cond in spec.link_conditions.items():
            a, b = (int(x) for x in key.split("-"))
            out[(a, b)] = dict(cond)
        return {k: v for k, v in out.items() if v}

    def set_link(self, a: int, b: int, cond: dict[str, str] | None) -> None:
        """Conditions on the link between nodes a and b (None: none), applied at once when
        the network runs."""
        from regtest.hosts import CONDITIONS, check_condition

        if not self.spec.hosts:
            raise NetworkError("link conditions need --hosts mode (they apply between the "
                               "nodes' network namespaces): make the network with "
                               "`up --hosts`")
        self.check_node(a)
        self.check_node(b)
        if a == b:
            raise NetworkError("a link joins two different nodes")
        clean = {k: check_condition(k, v) for k, v in (cond or {}).items()
                 if k in CONDITIONS and v}
        if clean.get("jitter") and not clean.get("delay"):
            raise NetworkError("--jitter needs --delay (it varies the delay)")
        _need_netem(clean)
        with self.edit() as spec:
            spec.link_conditions[f"{min(a, b)}-{max(a, b)}"] = clean
        if self.read_run() is not None:
            self.apply_links()

    def set_link_defaults(self, cond: dict[str, str]) -> None:
        from regtest.hosts import CONDITIONS, check_condition

        clean = {k: check_condition(k, v) for k, v in cond.items() if k in CONDITIONS and v}
        if clean and not self.spec.hosts:
            raise NetworkError("--delay/--jitter/--loss/--rate need --hosts mode (they apply "
                               "between the nodes' network namespaces)")
        if clean.get("jitter") and not clean.get("delay"):
            raise NetworkError("--jitter needs --delay (it varies the delay)")
        _need_netem(clean)
        with self.edit() as spec:
            spec.link_defaults = clean

    def apply_links(self) -> str:
        """Give the running network's links the conditions network.json has now (read
        afresh, under a lock of its own, so that two `link` commands at once apply the later
        one's whole state last); how (hosts.apply_links)."""
        from regtest.hosts import apply_links

        if not self.spec.hosts:
            return "none"
        with open(self.dir / "links.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.reload()
            run = self.read_run()
            owner = int(run["supervisor"]) if run else os.getpid()
            return apply_links(self.hosts, self.conditions(), owner)

    def link_emulator(self) -> dict | None:
        """The userspace link emulator's record (regtest/linkemu.py; None if none was started)
        with "running": whether it still runs."""
        from regtest import linkemu

        state = linkemu.read_state(self.dir)
        if state is not None:
            state["running"] = linkemu.running(state)
        return state

    def describe_links(self) -> list[str]:
        from regtest.hosts import describe

        spec = self.spec
        lines = []
        if spec.link_defaults:
            lines.append(f"links: {describe(spec.link_defaults)} (every link of the topology)")
        for key, cond in sorted(spec.link_conditions.items()):
            lines.append(f"link {key}: {describe(cond) or 'no conditions'}")
        return lines

    def send(self, src: int, dst: int, amount: Decimal) -> str:
        address = self.call(dst, "getnewaddress", f"from node {src}", wallet=True)
        return self.call(src, "sendtoaddress", address, str(amount), wallet=True)

    def faucet(self, address: str, amount: Decimal) -> tuple[int, str]:
        """Pay from the node whose wallet holds the most (the miners' coins)."""
        balances = []
        for i in range(self.spec.nodes):
            try:
                balances.append((Decimal(str(self.call(i, "getbalance", wallet=True))), i))
            except NodeUnreachable:
                continue  # (a node that is down)
        if not balances:
            raise NetworkError("no node answers (is the network up?)")
        best, i = max(balances)
        if best < amount:
            raise NetworkError(f"no wallet holds {btc_text(amount)} BTC (the richest, node {i}, "
                               f"has {btc_text(best)}); mine some blocks first (`mine 101`)")
        return i, self.call(i, "sendtoaddress", address, str(amount), wallet=True)

    def mine(self, i: int, n: int) -> list[str]:
        address = self.call(i, "getnewaddress", "mined", wallet=True)
        return self.call(i, "generatetoaddress", n, address)

    def endpoints(self, i: int) -> dict:
        """Where node i answers: JSON-RPC URL, P2P address, datadir, its services' URLs."""
        spec = self.spec
        out = {"rpc": f"http://{self.host(i)}:{spec.rpc_ports[i]}", "p2p": self.p2p_addr(i),
               "datadir": str(self.datadir(i)),
               "cookie": str(self.datadir(i) / "regtest" / ".cookie")}
        out.update(spec.services.get(str(i), {}))
        return out

    def node_row(self, i: int) -> dict:
        """Node i's state: height, tip, peers, mempool, wallet balances, endpoints; "up"
        once all of it answered, with what did answer kept otherwise."""
        row: dict = {"node": i, **self.endpoints(i)}
        try:
            c = self.client(i, timeout=min(self.rpc_timeout, 10))
            row["height"] = c.call("getblockcount")
            row["tip"] = c.call("getbestblockhash")
            row["peer_list"] = [{"id": p["id"], "addr": p["addr"], "inbound": p["inbound"],
                                 "synced_blocks": p["synced_blocks"],
                                 "addrbind": p.get("addrbind", ""),
                                 "node": self.node_at(p["addr"])}
                                for p in c.call("getpeerinfo")]
            row["peers"] = len(row["peer_list"])
            row["mempool"] = c.call("getmempoolinfo")["size"]
            bal = self.client(i, True, min(self.rpc_timeout, 10)).call("getbalances")["mine"]
            row["balance"] = quantize_btc(bal["trusted"])
            row["pending"] = quantize_btc(bal["untrusted_pending"])
            row["immature"] = quantize_btc(bal["immature"])
            row["up"] = True
        except (NodeUnreachable, NodeRPCError) as err:
            row["up"] = False
            down = self.spec.down.get(str(i))
            row["error"] = down if down and isinstance(err, NodeUnreachable) else str(err)
        return row

    def node_at(self, addr: str) -> int | None:
        """The node a peer address belongs to: its P2P address, or (an inbound peer) the
        address it dials from, which in --hosts mode is its own host."""
        if addr in self._p2p_index():
            return self._p2p_index()[addr]
        if self.spec.hosts:
            host = addr.rsplit(":", 1)[0]
            for i in range(self.spec.nodes):
                if self.host(i) == host:
                    return i
        return None

    def _p2p_index(self) -> dict[str, int]:
        return {self.p2p_addr(i): i for i in range(self.spec.nodes)}

    def status(self) -> list[dict]:
        """A row per node (node_row), asked of all nodes at once."""
        from concurrent.futures import ThreadPoolExecutor

        n = self.spec.nodes
        with ThreadPoolExecutor(max_workers=min(n, 16)) as pool:
            rows = list(pool.map(self.node_row, range(n)))
        # An inbound peer comes from the port its dialler's socket is bound to.
        dialled_from = {p["addrbind"]: r["node"] for r in rows for p in r.get("peer_list", [])
                        if not p["inbound"] and p["addrbind"]}
        for r in rows:
            for p in r.get("peer_list", []):
                if p["node"] is None:
                    p["node"] = dialled_from.get(p["addr"])
        return rows


def _need_netem(cond: dict[str, str]) -> None:
    from regtest.hosts import conditions_available

    why = conditions_available() if cond else None
    if why is not None:
        raise NetworkError(f"cannot set link conditions: {why}")


SUPERVISOR_MARKERS = ("regtest.cli", "minibtc-net")  # `python -m regtest.cli`, the script


def _alive(pid: int, marker: str | tuple[str, ...]) -> bool:
    """Is pid a running (not zombie) process whose command line has `marker` (one of)? (A
    pid alone may have been reused by an unrelated process.)"""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    markers = (marker,) if isinstance(marker, str) else marker
    return any(m in cmdline for m in markers) and state != "Z"


def stop_stale(run: dict) -> int:
    """Terminate the miners (and nodes) a dead supervisor left; how many there were."""
    n = 0
    for kind, marker in (("miners", "regtest.miner"), ("nodes", "node.daemon")):
        for pid in run.get(kind, {}).values():
            if _alive(int(pid), marker):
                terminate(int(pid))
                n += 1
    return n


def terminate(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
