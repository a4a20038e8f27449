"""The P2P fuzzer, bounded: hundreds of connections to a node that has a follower node
connected to it, each sending mutated messages of every type the node knows (and some it
does not) before and after the handshake, on connections to it and on its own outbound
connections, in v1 framing, with broken frames, in BIP324 v2 sessions and some v2 garbage.
The node must answer RPC throughout, write no traceback and keep its log small, and the
follower must stay in step: the same tip once the node mines a few blocks.

Seeded: the seed is printed; MINIBTC_FUZZ_SEED=<n> replays a run (or tries another), and
MINIBTC_FUZZ_CONNECTIONS=<n> makes more connections (500 by default)."""

from __future__ import annotations

import os
import random
import socket
import struct
import time

from consensus.hashes import sha256d
from consensus.params import REGTEST
from node.p2p.v2transport import V2Transport, V2TransportError
from tests.chainbuilder import Wallet
from tests.functional.framework import NodeProcess
from tests.functional.p2p_peer import MAGIC, Closed, RawPeer, frame_with, listen
from wallet.address import script_to_address

SEED = int(os.environ.get("MINIBTC_FUZZ_SEED", "20261206"))
CONNECTIONS = int(os.environ.get("MINIBTC_FUZZ_CONNECTIONS", "500"))
EMPTY = ("verack", "getaddr", "sendheaders", "sendaddrv2", "wtxidrelay", "mempool",
         "filterclear")


def compact(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def templates(block: bytes, tx: bytes, coinbase: bytes) -> dict[str, bytes]:
    """A well-formed payload of every message type, from the node's own chain."""
    header = block[:80]
    bhash = sha256d(header)
    txid = sha256d(tx)  # (a hash to name in inventories: whether it is a txid is no matter)
    inv = compact(4) + b"".join(struct.pack("<I", t) + h for t, h in (
        (1, txid), (2, bhash), (0x40000002, bhash), (5, txid)))
    locator = struct.pack("<I", 70016) + compact(1) + bhash + bytes(32)
    now = int(time.time())
    out = {name: b"" for name in EMPTY}
    out.update({
        "version": RawPeer.version_msg(None).serialize(),  # type: ignore[arg-type]
        "ping": os.urandom(8), "pong": os.urandom(8),
        "feefilter": struct.pack("<q", 1000),
        "sendcmpct": b"\x01" + struct.pack("<Q", 2),
        "inv": inv, "getdata": inv, "notfound": inv,
        "getheaders": locator, "getblocks": locator,
        "headers": compact(1) + header + b"\x00",
        "block": block, "tx": tx,
        "addr": compact(1) + struct.pack("<IQ", now, 9) + bytes(10) + b"\xff\xff"
        + bytes([10, 0, 0, 1]) + struct.pack(">H", 18444),
        "addrv2": compact(1) + struct.pack("<I", now) + compact(9) + b"\x01" + compact(4)
        + bytes([10, 0, 0, 2]) + struct.pack(">H", 18444),
        "cmpctblock": header + os.urandom(8) + compact(0) + compact(1) + compact(0) + coinbase,
        "getblocktxn": bhash + compact(1) + compact(0),
        "blocktxn": bhash + compact(1) + coinbase,
        "filterload": compact(8) + os.urandom(8) + struct.pack("<II", 5, 0) + b"\x00",
        "filteradd": compact(20) + os.urandom(20),
        "getcfilters": b"\x00" + struct.pack("<I", 0) + bhash,
        "getcfheaders": b"\x00" + struct.pack("<I", 0) + bhash,
        "getcfcheckpt": b"\x00" + bhash,
        "sendtxrcncl": struct.pack("<I", 1) + os.urandom(8),
        "merkleblock": header + struct.pack("<I", 1) + compact(1) + txid + compact(1) + b"\x01",
        "reject": b"\x02tx\x10\x05junk" + txid, "alert": os.urandom(40),
        "nosuchcmd": os.urandom(16),
    })
    return out


def mutate(rng: random.Random, payload: bytes) -> bytes:
    b = bytearray(payload)
    kind = rng.randrange(8)
    if kind == 0:
        return bytes(b)  # as it is: valid messages move the peer's state along
    if kind == 1 and b:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 2 and b:
        del b[rng.randrange(len(b)):]
    elif kind == 3:
        b += os.urandom(rng.randint(1, 64))
    elif kind == 4:  # a huge count or length somewhere
        at = rng.randrange(len(b) + 1)
        b[at:at] = rng.choice([b"\xfd\xff\xff", b"\xfe\xff\xff\xff\x7f", b"\xff" + b"\xff" * 8,
                               b"\xfe\x00\x00\x00\x02", b"\xfd\x00\x00"])
    elif kind == 5:
        b = bytearray(os.urandom(rng.randint(0, 300)))
    elif kind == 6:
        b = b * rng.randint(2, 3)
    elif b:
        at = rng.randrange(len(b))
        b[at:at + 4] = struct.pack("<I", rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 70016]))
    return bytes(b)


def broken_frame(rng: random.Random, command: str, payload: bytes) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return frame_with(command, payload, magic=os.urandom(4))
    if kind == 1:
        return frame_with(command, payload, check=os.urandom(4))
    if kind == 2:  # longer than what follows (the peer then goes away)
        return frame_with(command, payload, length=len(payload) + rng.randint(1, 1000))
    if kind == 3:  # over the 4 MB message limit
        return frame_with(command, payload, length=rng.choice([4_000_001, 0x02000001,
                                                               0xFFFFFFFF]))
    return frame_with(rng.choice(["", "\x00" * 12, "véréck", command + "\x01"]), payload)


def v2_garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:  # a v2 key exchange that is no key, then noise
        return os.urandom(64) + os.urandom(rng.randint(0, 4200))
    if kind == 1:  # the v1 magic, then something that is no version message
        return MAGIC + os.urandom(rng.randint(1, 200))
    return os.urandom(rng.randint(1, 16))


def drain(peer: RawPeer) -> None:
    """Read what the node sent, without waiting (so its send buffer never fills)."""
    peer.sock.setblocking(False)
    try:
        while peer.sock.recv(1 << 16):
            pass
    except (BlockingIOError, InterruptedError):
        pass
    finally:
        peer.sock.setblocking(True)
        peer.sock.settimeout(5)


SENT: dict[str, int] = {}  # messages sent, by kind of connection


def v2_session(rng: random.Random, node: NodeProcess, payloads: dict[str, bytes]) -> str:
    """A BIP324 handshake done right, then mutated messages in valid encryption (and now and
    then bytes that are no packet: a failed authentication tag)."""
    t = V2Transport(True, MAGIC)
    source = f"127.0.{rng.randrange(1, 4)}.{rng.randrange(2, 250)}"
    with socket.create_connection(("127.0.0.1", node.p2pport), timeout=5,
                                  source_address=(source, 0)) as sock:
        try:
            sock.sendall(t.data_to_send())
            t.send("version", RawPeer.version_msg(None).serialize())  # type: ignore[arg-type]
            got: list[str] = []
            deadline = time.time() + 10
            while "verack" not in got:
                if time.time() > deadline:
                    return "v2 session (no handshake)"
                data = sock.recv(65536)
                if not data:
                    return "v2 session (closed in the handshake)"
                got += [command for command, _, _ in t.receive(data)]
                sock.sendall(t.data_to_send())
                if "version" in got and "sent verack" not in got:
                    sock.sendall(t.encrypt_message("verack"))
                    got.append("sent verack")
            for _ in range(rng.randint(1, 30)):
                if rng.random() < 0.03:
                    sock.sendall(os.urandom(rng.randint(1, 100)))
                else:
                    command = rng.choice(sorted(payloads))
                    sock.sendall(t.encrypt_message(command, mutate(rng, payloads[command])))
                SENT["v2 session"] = SENT.get("v2 session", 0) + 1
        except (OSError, TimeoutError, V2TransportError) as err:
            return f"v2 session (ended: {type(err).__name__})"
    return "v2 session"


def fuzz_connection(rng: random.Random, node: NodeProcess, payloads: dict[str, bytes]) -> str:
    """One connection's worth of junk; what kind of connection it was. Most connect to the
    node; some are the node's own outbound connections (addnode onetry) to a fuzz peer."""
    commands = sorted(payloads)
    mode = rng.choice(["before", "after", "after", "after", "after", "frames", "v2",
                       "outbound", "outbound", "v2 session"])
    if mode == "v2 session":
        return v2_session(rng, node, payloads)
    if mode == "outbound":
        with listen() as listener:
            port = listener.getsockname()[1]  # (v1: the fuzz peer speaks v1)
            node.call("addnode", f"127.0.0.1:{port}", "onetry", False)
            try:
                peer = RawPeer.accept(listener, timeout=10)
            except TimeoutError:
                return "outbound (never came)"
    else:
        source = f"127.0.{rng.randrange(1, 4)}.{rng.randrange(2, 250)}"
        peer = RawPeer(node.p2pport, source=source, timeout=5)
    try:
        if mode == "v2":
            peer.send_raw(v2_garbage(rng))
            return mode
        if mode == "after":
            peer.handshake()
            mode = "handshaken"
        elif mode == "outbound" and rng.random() < 0.7:
            peer.handshake_inbound()  # (the node's version first, then ours)
            mode = "handshaken"
        for _ in range(rng.randint(1, 30 if mode == "handshaken" else 6)):
            command = rng.choice(commands)
            payload = mutate(rng, payloads[command])
            if mode == "frames" or rng.random() < 0.03:
                peer.send_raw(broken_frame(rng, command, payload))
            else:
                peer.send_payload(command, payload)
            SENT[mode] = SENT.get(mode, 0) + 1
            if rng.random() < 0.3:
                drain(peer)
        if mode == "handshaken" and rng.random() < 0.5:
            # Wait until the node has handled all of it (or hung up).
            nonce = os.urandom(8)
            peer.send_payload("ping", nonce)
            peer.wait_for("pong", 10, lambda msg: msg.nonce == int.from_bytes(nonce, "little"))
    except (Closed, OSError, TimeoutError) as err:
        mode += f" (ended: {type(err).__name__})"  # the node hung up on us: its right
    finally:
        if rng.random() < 0.3:  # go away abruptly (RST) now and then
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
    return mode


def test_p2p_fuzz_node_with_a_follower(tmp_path):
    print(f"P2P fuzz seed {SEED} (MINIBTC_FUZZ_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    # (bloom filters and BIP157 filters served: their messages are handled, not refused)
    with NodeProcess(tmp_path / "a", "-peerbloomfilters=1", "-blockfilterindex=1",
                     "-peerblockfilters=1", "-v2transport=1") as a, \
            NodeProcess(tmp_path / "b") as b:
        addr = script_to_address(Wallet().p2wpkh, REGTEST)  # (no wallet needed)
        hashes = a.call("generatetoaddress", 101, addr)
        b.call("addnode", a.p2p_addr, "add")
        deadline = time.time() + 120
        while b.call("getbestblockhash") != hashes[-1]:
            assert time.time() < deadline, "the follower did not sync before the fuzz"
            time.sleep(0.2)
        block = bytes.fromhex(a.call("getblock", hashes[-1], 0))
        coinbase = bytes.fromhex(a.call("getblock", hashes[50], 2)["tx"][0]["hex"])
        payloads = templates(block, coinbase, coinbase)
        modes: dict[str, int] = {}
        for i in range(CONNECTIONS):
            mode = fuzz_connection(rng, a, payloads)
            modes[mode] = modes.get(mode, 0) + 1
            if i % 10 == 9:
                assert a.call("getblockcount") >= 101  # the node answers throughout
        print("connections:", modes, "messages sent:", SENT)
        with open(f"/proc/{a.proc.pid}/status") as f:
            print("node's memory:", *(line.strip() for line in f if line.startswith(
                ("VmHWM", "VmRSS"))))
        # The follower is still in step: it takes what the node mines next.
        tip = a.call("generatetoaddress", 3, addr)[-1]
        deadline = time.time() + 120
        while b.call("getbestblockhash") != tip:
            assert time.time() < deadline, (b.call("getpeerinfo"), a.call("getblockcount"))
            time.sleep(0.2)
        assert a.call("getbestblockhash") == tip
        for node in (a, b):
            log = (node.chain_dir / "debug.log").read_text(errors="replace")
            assert "Traceback" not in log
            assert "socket.send() raised exception" not in log
            assert len(log) < 8 << 20, len(log)  # the log rate limit holds
