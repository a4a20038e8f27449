"""--hosts mode: every node in a network namespace of its own, with its own address on a
bridge, so that nodes talk across a real network stack as separate hosts would (each on the
standard ports 18443/18444 of its own address). Needs root and iproute2 (`ip`).

    bridge  mb<tag>br   <subnet>.1/24          (the host's side: supervisor, CLIs, miners)
    node i  netns mb<tag>n<i>, eth0 <subnet>.<10+i>/24, veth mb<tag>h<i> on the bridge

<tag> and <subnet> come from the network's folder, so two networks do not collide.

Link conditions (delay, jitter, loss, rate) are tc netem on each node's eth0 where the kernel
has sch_netem; where it has not (this project's machine and CI), a userspace emulator
(regtest/linkemu.py) carries the conditioned links' packets through tun devices instead:

    node i  tun mb<tag>t<i>x<j> (route to node j's address)  <-> emulator <->  tun in node j

Where bridged traffic passes through iptables (br_netfilter loaded) and the FORWARD policy
drops it, as Docker sets it, nothing crosses the bridge; so `up` lets the bridge's own traffic
through with one FORWARD rule, and `down` removes it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path


class HostsError(Exception):
    pass


def tag_and_subnet(folder: Path) -> tuple[str, str]:
    h = hashlib.sha256(str(Path(folder).expanduser().resolve()).encode()).digest()
    return h[:2].hex(), f"10.{64 + h[2] % 64}.{h[3]}"


def available() -> str | None:
    """None if hosts mode can run here, else why not."""
    if os.geteuid() != 0:
        return "--hosts needs root (it creates network namespaces)"
    if shutil.which("ip") is None:
        return "--hosts needs iproute2's `ip` command (apt-get install iproute2)"
    return None


class Hosts:
    def __init__(self, folder: Path, nodes: int) -> None:
        self.dir = Path(folder).expanduser()
        self.tag, self.subnet = tag_and_subnet(folder)
        self.nodes = nodes
        self.bridge = f"mb{self.tag}br"

    def netns(self, i: int) -> str:
        return f"mb{self.tag}n{i}"

    def addr(self, i: int) -> str:
        return f"{self.subnet}.{10 + i}"

    def tun(self, i: int, j: int) -> str:
        """The link emulator's tun device in node i's namespace for the link to node j."""
        name = f"mb{self.tag}t{i}x{j}"
        if len(name) > 15:  # (IFNAMSIZ)
            raise HostsError(f"no tun device name for link {i}-{j}: too many nodes")
        return name

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    @property
    def cidr(self) -> str:
        return f"{self.subnet}.0/24"

    def wrap(self, i: int, args: list[str]) -> list[str]:
        """A command run inside node i's namespace."""
        return ["ip", "netns", "exec", self.netns(i), *args]

    def _ip(self, *args: str, check: bool = True) -> None:
        r = subprocess.run(["ip", *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise HostsError(f"ip {' '.join(args)}: {r.stderr.strip()}")

    def up(self) -> None:
        why = available()
        if why is not None:
            raise HostsError(why)
        self.down()  # whatever a crash left behind
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for i in range(self.nodes):
            ns, host_end, ns_end = self.netns(i), f"mb{self.tag}h{i}", f"mb{self.tag}p{i}"
            self._ip("netns", "add", ns)
            self._ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            self._ip("link", "set", ns_end, "netns", ns)
            self._ip("link", "set", host_end, "master", self.bridge)
            self._ip("link", "set", host_end, "up")
            self._ip("-n", ns, "link", "set", ns_end, "name", "eth0")
            self._ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")
            self._ip("-n", ns, "link", "set", "lo", "up")
        if _bridge_hits_iptables():
            self._iptables("-I")

    def down(self) -> None:
        from regtest import linkemu

        self._let_connections_close()
        linkemu.stop(self.dir)  # (its tun devices go with it)
        for i in range(self.nodes):
            self._ip("netns", "del", self.netns(i), check=False)  # (takes its veth along)
        self._ip("link", "del", self.bridge, check=False)
        while self._iptables("-D", check=False):  # (every copy a crash may have left)
            pass

    def _let_connections_close(self, timeout: float = 5.0) -> None:
        """Wait (at most `timeout`) while a node namespace has a TCP connection whose closing
        waits for an acknowledgement (FIN-WAIT-1, CLOSING, LAST-ACK). Such a socket, orphaned
        by the node that exited, keeps its namespace alive after `ip netns del`, and with it
        the veth on the host's side, until it gives up retransmitting (minutes; seen with
        100 ms links, whose last packets were still on their way when `down` came)."""
        if shutil.which("ss") is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            closing = False
            for i in range(self.nodes):
                r = subprocess.run(["ss", "-N", self.netns(i), "-Htan", "state", "fin-wait-1",
                                    "state", "closing", "state", "last-ack"],
                                   capture_output=True, text=True)
                closing = closing or (r.returncode == 0 and r.stdout.strip() != "")
            if not closing:
                return
            time.sleep(0.05)

    def _iptables(self, op: str, check: bool = True) -> bool:
        """Adds (-I), removes (-D) or checks (-C) the rule that forwards the bridge's own
        traffic; False where it fails or there is no iptables."""
        if shutil.which("iptables") is None:
            return False
        r = subprocess.run(["iptables", "-w", op, "FORWARD", "-i", self.bridge, "-o",
                            self.bridge, "-j", "ACCEPT"], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise HostsError(f"iptables {op} FORWARD: {r.stderr.strip()}")
        return r.returncode == 0

    def leftovers(self) -> list[str]:
        """Namespaces and links of this network that exist now (for tests and `down`)."""
        ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                               text=True).stdout
        prefix = f"mb{self.tag}"
        found = [w.rstrip(":@") for w in (ns + links).split() if w.startswith(prefix)]
        if self._iptables("-C", check=False):
            found.append(f"iptables FORWARD rule for {self.bridge}")
        from regtest import linkemu

        state = linkemu.read_state(self.dir)
        if linkemu.running(state):
            found.append(f"link emulator pid {state['pid']}")
        return found


def _bridge_hits_iptables() -> bool:
    try:
        return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except OSError:  # br_netfilter not loaded: bridged frames skip iptables
        return False


# -- link conditions (tc netem), as Warnet's --------------------------------------------------

_DURATION = re.compile(r"^\d+(\.\d+)?(us|ms|s)$")
_PERCENT = re.compile(r"^\d+(\.\d+)?%$")
_RATE = re.compile(r"^\d+(\.\d+)?(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$")
CONDITIONS = ("delay", "jitter", "loss", "rate")


def check_condition(name: str, value: str) -> str:
    """A netem value as tc takes it, or HostsError saying what is expected."""
    value = value.strip().lower()
    pattern, example = {"delay": (_DURATION, "100ms"), "jitter": (_DURATION, "20ms"),
                        "loss": (_PERCENT, "1%"), "rate": (_RATE, "1mbit")}[name]
    if not pattern.match(value):
        raise HostsError(f"--{name} {value!r}: expected a value such as {example}")
    return value


def netem_args(cond: dict[str, str]) -> list[str]:
    """tc netem's arguments for a link's conditions ({} for none)."""
    args: list[str] = []
    if cond.get("delay"):
        args += ["delay", cond["delay"]] + ([cond["jitter"]] if cond.get("jitter") else [])
    if cond.get("loss"):
        args += ["loss", cond["loss"]]
    if cond.get("rate"):
        args += ["rate", cond["rate"]]
    return args


def describe(cond: dict[str, str]) -> str:
    parts = []
    if cond.get("delay"):
        parts.append(f"delay {cond['delay']}" + (f" ± {cond['jitter']}" if cond.get("jitter")
                                                 else ""))
    if cond.get("loss"):
        parts.append(f"loss {cond['loss']}")
    if cond.get("rate"):
        parts.append(f"rate {cond['rate']}")
    return ", ".join(parts)


def netem_available() -> str | None:
    """None if tc can give links their conditions here, else why not: tc_commands' recipe
    (an htb tree, a netem in a class, a u32 filter to it) tried on a throwaway veth pair."""
    if shutil.which("tc") is None:
        return "link conditions need tc (apt-get install iproute2)"
    a, b = f"mbprobe{os.getpid() % 10000}", f"mbprobf{os.getpid() % 10000}"
    r = subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot make a veth pair: {r.stderr.strip()}"
    try:
        for what, cmd in (
                ("htb qdisc", ["qdisc", "add", "dev", a, "root", "handle", "1:", "htb",
                               "default", "1"]),
                ("htb class", ["class", "add", "dev", a, "parent", "1:", "classid", "1:10",
                               "htb", "rate", "10gbit"]),
                ("netem qdisc (sch_netem)", ["qdisc", "add", "dev", a, "parent", "1:10",
                                             "handle", "10:", "netem", "delay", "1ms"]),
                ("u32 classifier (cls_u32)", ["filter", "add", "dev", a, "parent", "1:",
                                              "protocol", "ip", "prio", "1", "u32", "match",
                                              "ip", "dst", "10.0.0.1/32", "flowid", "1:10"])):
            r = subprocess.run(["tc", *cmd], capture_output=True, text=True)
            if r.returncode != 0:
                return f"this kernel has no {what}: {r.stderr.strip()}"
        return None
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)


def conditions_available() -> str | None:
    """None if links can have conditions here (tc netem, or else the userspace emulator),
    else why not."""
    why = netem_available()
    if why is None:
        return None
    from regtest import linkemu

    fallback = linkemu.available()
    return None if fallback is None else f"{why}; and {fallback}"


def tc_commands(hosts: Hosts, conditions: dict[tuple[int, int], dict[str, str]]
                ) -> dict[int, list[list[str]]]:
    """The tc commands that give each node's eth0 its links' conditions: traffic to node j's
    address goes through a netem of the (i, j) link's conditions (each direction gets them:
    a delay of 100ms is 100ms each way); other traffic passes as it is. Per node, after its
    root qdisc is deleted; no commands for a node with no conditions."""
    per_node: dict[int, dict[int, dict[str, str]]] = {i: {} for i in range(hosts.nodes)}
    for (a, b), cond in conditions.items():
        if netem_args(cond):
            per_node[a][b] = cond
            per_node[b][a] = cond
    out: dict[int, list[list[str]]] = {}
    for i, peers in per_node.items():
        tc = ["ip", "netns", "exec", hosts.netns(i), "tc"]
        cmds = []
        if peers:
            cmds.append(tc + ["qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb",
                              "default", "1"])
            cmds.append(tc + ["class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1",
                              "htb", "rate", "10gbit"])
        for j, cond in sorted(peers.items()):
            minor = 10 + j
            cmds.append(tc + ["class", "add", "dev", "eth0", "parent", "1:", "classid",
                              f"1:{minor}", "htb", "rate", "10gbit"])
            cmds.append(tc + ["qdisc", "add", "dev", "eth0", "parent", f"1:{minor}", "handle",
                              f"{minor}:", "netem", *netem_args(cond)])
            cmds.append(tc + ["filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip",
                              "prio", "1", "u32", "match", "ip", "dst", f"{hosts.addr(j)}/32",
                              "flowid", f"1:{minor}"])
        out[i] = cmds
    return out


def apply_links(hosts: Hosts, conditions: dict[tuple[int, int], dict[str, str]],
                owner: int = 0) -> str:
    """Give the links their conditions, replacing whatever they had; how ("tc netem",
    "userspace emulator pid N" or "none").

    With tc netem (where the kernel has sch_netem) every node's egress tree is rebuilt whole
    (tc_commands). Without it (this project's machine and CI: no sch_netem), the links with
    conditions go through the userspace emulator (regtest/linkemu.py), which is replaced by
    one for the new conditions (the old one stopped first; it delivers the packets it held
    as it stops) and stopped when no link has any; `owner` is the supervisor's pid, whose
    exit it follows."""
    from regtest import linkemu

    active = {k: v for k, v in conditions.items() if netem_args(v)}
    no_netem = netem_available()
    if no_netem is None:
        linkemu.stop(hosts.dir)  # (one an earlier run left)
        for i, cmds in tc_commands(hosts, conditions).items():
            subprocess.run(["ip", "netns", "exec", hosts.netns(i), "tc", "qdisc", "del", "dev",
                            "eth0", "root"], capture_output=True)
            for cmd in cmds:
                _run(cmd)
        return "tc netem" if active else "none"
    linkemu.stop(hosts.dir)
    if not active:
        return "none"
    why = linkemu.available()
    if why is not None:
        raise HostsError(f"cannot set link conditions: {no_netem}; and {why}")
    links = [linkemu.Link(a, b, hosts.netns(a), hosts.netns(b), hosts.addr(a), hosts.addr(b),
                          hosts.tun(a, b), hosts.tun(b, a), cond)
             for (a, b), cond in sorted(active.items())]
    try:
        pid = linkemu.start(hosts.dir, links, owner)
    except OSError as err:
        raise HostsError(f"the userspace link emulator did not start: {err}") from None
    return f"userspace emulator pid {pid}"


def _run(args: list[str]) -> None:
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise HostsError(f"{' '.join(args[4:])}: {r.stderr.strip()}")
