"""Link conditions in userspace: netem's delay, jitter, loss, rate and queue limit applied by
a process of ours to the packets between two nodes of a --hosts network.

Why this exists: `minibtc-net link` and `up --delay` are built on tc netem (regtest/hosts.py),
but this project's machine and its CI run kernels without sch_netem, where tc refuses a netem
qdisc. hosts.apply_links uses tc netem where the kernel has it (netem_available) and this
emulator where it does not.

How: for each link (i, j) with conditions the emulator opens two tun devices (IFF_TUN, no
packet information header), moves one into node i's namespace and one into node j's, and
routes the other node's address (/32) through it there:

    node i: j's address -> tun mb<tag>t<i>x<j>  ==[emulator]==  tun mb<tag>t<j>x<i> <- node j

The nodes' own addresses stay as they are (the packets keep them; nothing is translated), so
Bitcoin's P2P, its addr messages and getpeerinfo see the same peers as without conditions.
Each direction of a link has a LinkQueue: what node i sends to node j is read from i's tun,
scheduled as netem would schedule it, and written to j's tun at its time. Experiments on this
kernel (6.18): the tun fd keeps working after `ip link set DEV netns NS`; with the /32 routes
on both sides the reverse path is symmetric, so a strict rp_filter (1) passes the packets and
nothing needs turning off; an established TCP connection moves onto the tun when its route
appears and back to eth0 when it goes.

Timing: the loop waits in epoll with a millisecond timeout rounded up, so a packet leaves at
its due time or up to a millisecond or so after (more on a loaded machine: one-way delays of
100 ms +- 20 ms measured 80.3-123.6 ms over 2,000 datagrams on this shared machine). Python
forwards about 170,000 packets/s here (2 Gbit/s of TCP with no conditions), far above what the
nodes send.

Lifetime: `python -m regtest.linkemu` sets everything up, then forks; the parent writes the
state file (linkemu.json in the network's folder: the pid, the links, the log) and exits (so
the emulator is no child of the long-lived supervisor or of a short `link` command), and the
child forwards packets until SIGTERM (it then delivers what it holds at once), until the
network's supervisor (--owner) is gone, or until a tun device goes (its namespace deleted).
When it exits, for whatever reason, its fds close and the kernel removes its tun devices with
their routes: traffic between the nodes goes over eth0 again, without conditions.
`minibtc-net status` says so (the state file names a pid that is not running), and so does
the supervisor's output.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import heapq
import json
import logging
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("linkemu")

STATE = "linkemu.json"  # in the network's folder, while an emulator was started
LOG = "linkemu.log"
MARKER = "regtest.linkemu"  # (in the emulator's command line)

# netem's defaults and units, as tc takes them
DEFAULT_LIMIT = 1000  # packets held per direction (netem's default `limit`)
ETH_HEADER = 14  # netem on eth0 counts the Ethernet header in a packet's length; a tun has none
_DURATION = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_RATE = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,  # tc: bit/s, SI prefixes
         "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}  # tc: bytes/s


def parse_duration(text: str) -> float:
    """Seconds, from tc's 100ms / 250us / 1s."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s)", text.strip().lower())
    if not m:
        raise ValueError(f"not a duration: {text!r} (e.g. 100ms)")
    return float(m[1]) * _DURATION[m[2]]


def parse_rate(text: str) -> float:
    """Bits per second, from tc's 1mbit / 500kbit / 1mbps (bytes)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)",
                     text.strip().lower())
    if not m:
        raise ValueError(f"not a rate: {text!r} (e.g. 1mbit)")
    return float(m[1]) * _RATE[m[2]]


def parse_percent(text: str) -> float:
    """A fraction, from 1% / 0.5%."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)%", text.strip())
    if not m:
        raise ValueError(f"not a percentage: {text!r} (e.g. 1%)")
    return min(float(m[1]) / 100, 1.0)


class LinkQueue:
    """One direction of a link, as a netem qdisc schedules it (no I/O, no clock: the caller
    gives `now`, in seconds).

    offer(): a packet arriving at `now` is lost with probability `loss`; dropped if `limit`
    packets are already held; else due at now + delay, the delay drawn uniformly from
    [delay - jitter, delay + jitter] (netem's distribution when none is named), at least 0.
    With a rate, packets leave one after another as on a wire: due at
    max(now + delay, the previous packet's due time) + its bits / rate (netem's formula, so
    with a rate nothing is reordered; without one, jitter can reorder packets, as netem
    does). pop_due(): the packets due by `now`, earliest first."""

    def __init__(self, delay: float = 0.0, jitter: float = 0.0, loss: float = 0.0,
                 rate: float = 0.0, limit: int = DEFAULT_LIMIT,
                 rng: random.Random | None = None, overhead: int = ETH_HEADER) -> None:
        self.delay, self.jitter, self.loss, self.rate = delay, jitter, loss, rate
        self.limit, self.overhead = limit, overhead
        self.rng = rng or random.Random()
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0  # (equal due times leave in arrival order)
        self._last_due = float("-inf")
        self.passed = self.lost = self.overflowed = 0

    def __len__(self) -> int:
        return len(self._heap)

    def offer(self, packet: bytes, now: float) -> float | None:
        """Queue a packet; its due time, or None if it was lost or dropped."""
        if self.loss and self.rng.random() < self.loss:
            self.lost += 1
            return None
        if len(self._heap) >= self.limit:
            self.overflowed += 1
            return None
        delay = self.delay
        if self.jitter:
            delay += self.rng.uniform(-self.jitter, self.jitter)
        due = now + max(delay, 0.0)
        if self.rate:
            due = max(due, self._last_due) + (len(packet) + self.overhead) * 8 / self.rate
        self._last_due = max(self._last_due, due)
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, packet))
        return due

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[bytes]:
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        self.passed += len(out)
        return out


def queue_for(cond: dict[str, str], rng: random.Random | None = None,
              limit: int = DEFAULT_LIMIT) -> LinkQueue:
    """A LinkQueue for a link's conditions as network.json keeps them ({"delay": "100ms",
    "jitter": "20ms", "loss": "1%", "rate": "1mbit"}, each optional)."""
    return LinkQueue(delay=parse_duration(cond["delay"]) if cond.get("delay") else 0.0,
                     jitter=parse_duration(cond["jitter"]) if cond.get("jitter") else 0.0,
                     loss=parse_percent(cond["loss"]) if cond.get("loss") else 0.0,
                     rate=parse_rate(cond["rate"]) if cond.get("rate") else 0.0,
                     limit=limit, rng=rng)


# -- the tun devices and the forwarding loop ------------------------------------------------

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def open_tun(name: str) -> int:
    """A new tun device `name` in this process's namespace; its fd (non-blocking). The
    device lives as long as the fd (not persistent)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def available() -> str | None:
    """None if the emulator can run here (root, /dev/net/tun usable), else why not."""
    if os.geteuid() != 0:
        return "the userspace link emulator needs root (it makes tun devices)"
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as err:
        return f"the userspace link emulator needs /dev/net/tun: {err.strerror}"
    os.close(fd)
    return None


@dataclass
class Link:
    """A link with conditions, as the emulator's input names it."""
    a: int
    b: int
    ns_a: str
    ns_b: str
    addr_a: str
    addr_b: str
    dev_a: str  # the tun in a's namespace (the route to b's address)
    dev_b: str
    cond: dict[str, str] = field(default_factory=dict)


def _ip(args: list[str], batch: list[str] | None = None) -> None:
    r = subprocess.run(["ip", *args, *(["-batch", "-"] if batch is not None else [])],
                       input="\n".join(batch or []) + "\n" if batch is not None else None,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {(r.stderr or r.stdout).strip()}")


class Emulator:
    def __init__(self, links: list[Link], owner: int = 0, seed: int | None = None) -> None:
        self.links = links
        self.owner = owner
        self.rng = random.Random(seed)
        self.fds: list[int] = []
        # fd -> (the direction's queue, the fd its packets go out on)
        self.route: dict[int, tuple[LinkQueue, int]] = {}
        self.names: dict[int, str] = {}  # queue id -> "a->b" for the log
        self.ignored = 0  # packets not IPv4 (a tun's own IPv6 chatter, if any)
        self.stop = ""  # set (to why) by a signal handler: run() returns

    def setup(self) -> None:
        """Make the tun devices, move each into its node's namespace, bring it up and route
        the other node's address through it. On failure nothing stays (the fds close)."""
        try:
            per_ns: dict[str, list[str]] = {}
            moves = []
            for ln in self.links:
                fa, fb = open_tun(ln.dev_a), open_tun(ln.dev_b)
                self.fds += [fa, fb]
                qa, qb = queue_for(ln.cond, self.rng), queue_for(ln.cond, self.rng)
                self.route[fa] = (qa, fb)  # what a sends to b
                self.route[fb] = (qb, fa)
                self.names[id(qa)], self.names[id(qb)] = f"{ln.a}->{ln.b}", f"{ln.b}->{ln.a}"
                for dev, ns, peer in ((ln.dev_a, ln.ns_a, ln.addr_b),
                                      (ln.dev_b, ln.ns_b, ln.addr_a)):
                    moves.append(f"link set {dev} netns {ns}")
                    per_ns.setdefault(ns, []).extend([
                        f"link set {dev} addrgenmode none",  # (no IPv6 link-local chatter)
                        f"link set {dev} up",
                        f"route replace {peer}/32 dev {dev}"])
            _ip([], moves)
            for ns, cmds in per_ns.items():
                _ip(["-n", ns], cmds)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []

    def _owner_alive(self) -> bool:
        if not self.owner:
            return True
        try:
            stat = Path(f"/proc/{self.owner}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def run(self, wake: int | None = None) -> str:
        """Forward packets until told to stop (self.stop set, by a signal handler: `wake`
        is the signal wakeup fd that ends the wait at once) or a tun device fails; why it
        stopped."""
        ep = select.epoll()
        for fd in self.fds:
            ep.register(fd, select.EPOLLIN)
        if wake is not None:
            ep.register(wake, select.EPOLLIN)
        queues = [q for q, _ in self.route.values()]
        out_of = {id(q): out for q, out in self.route.values()}
        next_check = time.monotonic()
        try:
            while True:
                if self.stop:
                    return f"stopped ({self.stop})"
                now = time.monotonic()
                if now >= next_check:
                    if not self._owner_alive():
                        return f"the network's supervisor (pid {self.owner}) is gone"
                    next_check = now + 0.5
                due = min((q.next_due() for q in queues if len(q)), default=next_check)
                for fd, ev in ep.poll(max(0.0, min(due, next_check) - now)):
                    if fd == wake:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake, 512)
                        continue
                    if ev & (select.EPOLLERR | select.EPOLLHUP):
                        return f"tun fd {fd} failed (its namespace deleted?)"
                    queue, _ = self.route[fd]
                    t = time.monotonic()
                    for _ in range(256):  # (then the others get their turn)
                        try:
                            pkt = os.read(fd, 65536)
                        except BlockingIOError:
                            break
                        if not pkt or pkt[0] >> 4 != 4:
                            self.ignored += 1
                            continue
                        queue.offer(pkt, t)
                now = time.monotonic()
                for q in queues:
                    if len(q) and q.next_due() <= now:
                        out = out_of[id(q)]
                        for pkt in q.pop_due(now):
                            try:
                                os.write(out, pkt)
                            except OSError as err:
                                if err.errno == errno.EBADFD:
                                    return f"tun fd {out} failed (its namespace deleted?)"
                                # (anything else: that packet is lost, as on a wire)
        except OSError as err:
            if err.errno in (errno.EBADFD, errno.ENODEV):
                return f"a tun device went ({err.strerror})"
            raise
        finally:
            ep.close()

    def flush(self) -> int:
        """Deliver every packet still held, now (when told to stop: the emulator being
        replaced or the network going down should not cost the nodes' connections packets,
        least of all the ones that close them); how many."""
        n = 0
        for q, out in self.route.values():
            for pkt in q.pop_due(float("inf")):
                with contextlib.suppress(OSError):
                    os.write(out, pkt)
                    n += 1
        return n

    def stats(self) -> str:
        parts = []
        for q, _ in self.route.values():
            parts.append(f"{self.names[id(q)]}: {q.passed} passed, {q.lost} lost, "
                         f"{q.overflowed} over the limit, {len(q)} held")
        return "; ".join(parts) + (f"; {self.ignored} non-IPv4 ignored" if self.ignored else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m regtest.linkemu",
                                 description="netem-like link conditions between the "
                                 "namespaces of a --hosts network (started by minibtc-net)")
    ap.add_argument("--state", required=True, help="the state file to write (linkemu.json)")
    ap.add_argument("--log", required=True, help="where the running emulator logs")
    ap.add_argument("--owner", type=int, default=0, help="exit when this pid is gone")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    links = [Link(**x) for x in json.load(sys.stdin)["links"]]
    emu = Emulator(links, args.owner, args.seed)

    def on_signal(signum, _frame) -> None:  # noqa: ANN001
        emu.stop = signal.Signals(signum).name

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s linkemu[%(process)d] %(message)s")
    try:
        emu.setup()
    except (OSError, ValueError) as err:
        print(f"linkemu: {err}", file=sys.stderr)
        return 1
    if emu.stop:
        emu.close()
        print(f"linkemu: stopped ({emu.stop}) while setting up", file=sys.stderr)
        return 1
    logfd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:  # the parent: record the child, say it is ready, go
        state = {"pid": pid, "links": {f"{ln.a}-{ln.b}": ln.cond for ln in links},
                 "log": args.log, "owner": args.owner, "started": time.time()}
        _write(Path(args.state), state)
        print(f"ready {pid}", flush=True)
        os._exit(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(logfd, 1)
    os.dup2(logfd, 2)
    os.close(null)
    os.close(logfd)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    log.info("forwarding %d link(s) (owner pid %d)", len(links), args.owner)
    for ln in links:
        log.info("link %d-%d (%s via %s, %s via %s): %s", ln.a, ln.b, ln.addr_a, ln.dev_a,
                 ln.addr_b, ln.dev_b, ", ".join(f"{k} {v}" for k, v in ln.cond.items() if v))
    why = "failed"
    try:
        why = emu.run(wake_r)
        if emu.stop:
            log.info("%s; %d held packet(s) delivered at once", why, emu.flush())
        else:
            log.warning("stopping: %s; the links have no conditions now", why)
    except Exception:  # noqa: BLE001
        log.exception("failed; the links have no conditions now")
    finally:
        log.info("%s", emu.stats())
        emu.close()
    return 0 if emu.stop else 1


# -- the launcher's side (regtest/hosts.py) -------------------------------------------------


def _write(path: Path, state: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def read_state(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / STATE).read_text())
    except (OSError, ValueError):
        return None


def running(state: dict | None) -> bool:
    """Does the emulator a state file names still run?"""
    if not state:
        return False
    pid = int(state.get("pid", 0))
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return (MARKER.encode() in cmdline and str(state.get("log", "")).encode() in cmdline
            and stat.rsplit(")", 1)[1].split()[0] != "Z")


def start(folder: Path, links: list[Link], owner: int, seed: int | None = None,
          timeout: float = 30) -> int:
    """Start an emulator for these links (none may be running for the folder); its pid once
    its devices and routes are in place. OSError with its message if it could not."""
    folder = Path(folder)
    args = [sys.executable, "-m", MARKER, "--state", str(folder / STATE),
            "--log", str(folder / LOG), "--owner", str(owner)]
    if seed is not None:
        args += ["--seed", str(seed)]
    spec = json.dumps({"links": [vars(ln) for ln in links]})
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(spec, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise OSError(f"the link emulator did not start in {timeout:.0f} s") from None
    if proc.returncode != 0 or not out.startswith("ready "):
        raise OSError((err or out).strip() or f"the link emulator exited with "
                      f"{proc.returncode}")
    return int(out.split()[1])


def stop(folder: Path, timeout: float = 5) -> None:
    """Stop the folder's emulator, if one runs, and wait until it is gone (and its tun
    devices with it); the state file goes too."""
    path = Path(folder) / STATE
    state = read_state(folder)
    if state is not None and running(state):
        pid = int(state["pid"])
        _write(path, {**state, "stopping": True})  # (its exit is no failure to report)
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while running(state) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not running(state):
                break
    path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
