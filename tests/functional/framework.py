"""Start real minibtcd processes on free loopback ports with temporary datadirs, and talk to
them over JSON-RPC (stdlib HTTP, like any third-party client would)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from consensus.amounts import COIN
from consensus.hashes import hex_to_hash
from consensus.tx import OutPoint, TxOut
from node.rpc.jsonutil import dumps  # writes Decimal amounts exactly
from regtest.network import free_port  # noqa: F401  (tests import it from here)

ROOT = Path(__file__).resolve().parents[2]


class RPCFailure(Exception):
    def __init__(self, code: int, message: str, http_status: int):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


class NodeProcess:
    """One minibtcd. Use as a context manager, or call start()/stop()."""

    def __init__(self, datadir: Path, *extra: str, chain: str = "regtest") -> None:
        self.datadir = Path(datadir)
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.chain = chain
        self.rpcport = free_port()
        self.p2pport = free_port()
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None
        self.user: str | None = None
        self.password: str | None = None

    @property
    def chain_dir(self) -> Path:
        return self.datadir if self.chain == "main" else self.datadir / self.chain

    @property
    def p2p_addr(self) -> str:
        return f"127.0.0.1:{self.p2pport}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpcport}/"

    def args(self) -> list[str]:
        return [f"-datadir={self.datadir}", f"-chain={self.chain}", f"-rpcport={self.rpcport}",
                f"-port={self.p2pport}", "-bind=127.0.0.1", "-printtoconsole=0", "-par=1",
                *self.extra]

    def start(self, *more: str, wait: bool = True) -> NodeProcess:
        log = open(self.datadir / "stdout.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.daemon", *self.args(), *more],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"minibtcd exited with {self.proc.returncode}:\n"
                                   + (self.datadir / "stdout.log").read_text()[-3000:])
            try:
                self.call("getblockcount")
                return
            except (OSError, RPCFailure, ValueError):
                time.sleep(0.1)
        raise TimeoutError("minibtcd did not become ready")

    def auth(self) -> tuple[str, str]:
        if self.user is not None:
            return self.user, self.password
        user, _, pw = (self.chain_dir / ".cookie").read_text().partition(":")
        return user, pw

    def request(self, payload, path: str = "/", auth: tuple[str, str] | None = None,
                raw: bytes | None = None) -> tuple[int, object]:
        user, pw = auth or self.auth()
        data = raw if raw is not None else dumps(payload).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.rpcport}{path}", data=data,
            headers={"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode(),
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                body = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            body = e.read()
            status = e.code
        if not body:
            return status, None
        try:
            return status, json.loads(body, parse_float=Decimal)
        except ValueError:
            return status, body.decode(errors="replace")

    def create_wallet(self, name: str = "default") -> None:
        """A wallet loaded at every start from now on: minibtcd, as Core, makes none itself."""
        self.call("createwallet", wallet_name=name, load_on_startup=True)

    def call(self, method: str, *params, wallet: str | None = None, **named):
        payload = {"jsonrpc": "1.0", "id": 1, "method": method,
                   "params": named if named else list(params)}
        status, reply = self.request(payload, path=f"/wallet/{wallet}" if wallet else "/")
        if not isinstance(reply, dict):
            raise RPCFailure(-1, f"HTTP {status}: {reply!r}", status)
        if reply.get("error"):
            raise RPCFailure(reply["error"]["code"], reply["error"]["message"], status)
        return reply["result"]

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            try:
                self.call("stop")
            except Exception:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> NodeProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def rpc_error(fn, *args, **named) -> tuple[int, str]:
    """The (code, message) of the RPCFailure that fn(*args, **named) must raise."""
    try:
        fn(*args, **named)
    except RPCFailure as e:
        return e.code, e.message
    raise AssertionError(f"expected an RPC error from {fn.__name__}{args}")


@contextmanager
def funded_wallet_node(folder: Path, *args: str, blocks: int = 110) -> Iterator[NodeProcess]:
    """A node with wallet "w", which `blocks` blocks mined to it have funded (110: ten
    coinbases mature); stopped at the end."""
    n = NodeProcess(folder, "-fallbackfee=0.0002", *args)
    n.start()
    try:
        n.call("createwallet", "w")
        n.call("generatetoaddress", blocks, n.call("getnewaddress", wallet="w"))
        yield n
    finally:
        n.stop()


def coinbase_out(node, height: int, script_pubkey: bytes) -> tuple[OutPoint, TxOut]:
    """Output 0 of the coinbase at `height` on `node`: its outpoint and the output it is, the
    script given (the one that block was mined to)."""
    cb = node.call("getblock", node.call("getblockhash", height), 2)["tx"][0]
    value = int(Decimal(cb["vout"][0]["value"]) * COIN)
    return OutPoint(hex_to_hash(cb["txid"]), 0), TxOut(value, script_pubkey)
