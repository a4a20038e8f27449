"""An Electrum server beside a node: the maintained ElectrumX (PyPI `e-x`, spesmilo's) run as
its own process against the node's JSON-RPC, as nigiri runs electrs beside bitcoind.

ElectrumX keeps its own index (LevelDB, under `db_dir`) and asks the node for the rest: blocks,
the mempool, transactions (`-txindex`), spenders of outputs (`-txospenderindex`), fee
estimates, broadcasts. The node must therefore run with `-txindex -txospenderindex`.

    svc = ElectrumService(node_datadir, rpc_port, cookie_file, port, db_dir, ssl_port=None)
    svc.start()          # returns once the server answers server.version (index caught up)
    svc.url              # tcp://127.0.0.1:PORT   (svc.ssl_url with TLS)
    svc.refresh_auth()   # new credentials now (done by itself when the node's cookie changes)
    svc.stop()

`ElectrumClient` is a small blocking client of the protocol (newline-delimited JSON-RPC over
TCP or TLS), for tests, benchmarks and scripts. `python -m regtest.electrum --help` runs a
server from the command line.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from pathlib import Path

import orjson


class ElectrumError(Exception):
    """The server could not start, or a request got an error."""


def electrumx_available() -> bool:
    try:
        import electrumx  # noqa: F401
    except ImportError:
        return False
    return True


def make_self_signed_cert(cert_file: Path, key_file: Path, host: str = "127.0.0.1") -> None:
    """A self-signed certificate (EC P-256, 10 years) for `host`, with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minibtc electrum " + host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_file, 0o600)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


# How the service starts ElectrumX: its own main() after two settings of a local test network.
# 1. ElectrumX 2.0 pads what it sends over TCP/TLS against traffic analysis and, past its first
#    kilobyte, holds small answers for up to 1 s to fill 1 KiB packets (PaddedRSTransport): a
#    client asking one thing at a time waits a second per answer. Nobody analyses the traffic
#    of a local test network: the hold is `flush_delay` (default 0: answers go out at once,
#    still padded).
# 2. aiorpcx encodes every answer with the standard library's json; a wallet's history of
#    10,000 transactions spends most of its time there. orjson (a minibtc dependency) writes
#    the same JSON several times faster; anything it cannot encode goes the original way
#    (`fast_json=False` leaves aiorpcx as it is).
_BOOTSTRAP = """
import sys
from electrumx.server import transport
transport.PaddedRSTransport.WAIT_FOR_BUFFER_GROWTH_SECONDS = float(sys.argv[1])
try:
    if sys.argv[2] != "1":
        raise ImportError
    import orjson
    from aiorpcx.jsonrpc import JSONRPC
    _encode = JSONRPC.encode_payload.__func__

    def encode_payload(cls, payload):
        try:
            return orjson.dumps(payload)
        except TypeError:
            return _encode(cls, payload)

    JSONRPC.encode_payload = classmethod(encode_payload)
except (ImportError, AttributeError):
    pass
from electrumx.cli.electrumx_server import main
main()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ElectrumService:
    """ElectrumX for one node. `cookie_file` is the node's .cookie (read at start and by
    refresh_auth); or pass `rpc_user`/`rpc_password` instead."""

    def __init__(self, node_datadir: Path | str, rpc_port: int, cookie_file: Path | str | None,
                 port: int, db_dir: Path | str | None = None, *, ssl_port: int | None = None,
                 host: str = "127.0.0.1", rpc_host: str = "127.0.0.1",
                 rpc_user: str | None = None, rpc_password: str | None = None,
                 poll_ms: int = 250, cache_mb: int = 200, log_file: Path | str | None = None,
                 banner: str | None = None, extra_env: dict[str, str] | None = None,
                 flush_delay: float = 0.0, fast_json: bool = True,
                 follow_cookie: bool = True) -> None:
        self.node_datadir = Path(node_datadir)
        self.rpc_port = rpc_port
        self.rpc_host = rpc_host
        self.cookie_file = Path(cookie_file) if cookie_file else None
        self.rpc_user, self.rpc_password = rpc_user, rpc_password
        if self.cookie_file is None and (rpc_user is None or rpc_password is None):
            raise ValueError("ElectrumService needs the node's cookie file or its RPC user "
                             "and password")
        self.port = port
        self.ssl_port = ssl_port
        self.host = host
        self.db_dir = Path(db_dir) if db_dir else self.node_datadir / "electrumx"
        self.poll_ms = poll_ms
        self.cache_mb = cache_mb
        self.log_file = Path(log_file) if log_file else self.db_dir / "electrumx.log"
        self.banner = banner
        self.extra_env = dict(extra_env or {})  # more of ElectrumX's settings (LOG_LEVEL, ...)
        self.flush_delay = flush_delay
        self.fast_json = fast_json
        # A restarted node writes a new cookie: while running, the service watches the file and
        # hands ElectrumX the new credentials (refresh_auth) when it changes.
        self.follow_cookie = follow_cookie and self.cookie_file is not None
        self._auth_used: str | None = None
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()
        self.admin_port: int | None = None
        self.proc: subprocess.Popen | None = None

    # -- addresses ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    @property
    def ssl_url(self) -> str | None:
        return f"ssl://{self.host}:{self.ssl_port}" if self.ssl_port else None

    @property
    def cert_file(self) -> Path:
        return self.db_dir / "tls" / "cert.pem"

    @property
    def key_file(self) -> Path:
        return self.db_dir / "tls" / "key.pem"

    def daemon_url(self) -> str:
        if self.cookie_file is not None:
            try:
                user, _, password = self.cookie_file.read_text().strip().partition(":")
            except OSError as err:
                raise ElectrumError(f"cannot read the node's cookie {self.cookie_file}: "
                                    f"{err.strerror}") from None
        else:
            user, password = self.rpc_user, self.rpc_password
        creds = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
        return f"http://{creds}@{self.rpc_host}:{self.rpc_port}/"

    def _watch_cookie(self) -> None:
        while not self._stop_watching.wait(0.5):
            try:
                url = self.daemon_url()
                if url != self._auth_used:
                    self.refresh_auth()
            except (ElectrumError, OSError):
                continue  # the node is restarting, or ElectrumX busy: next time

    # -- life cycle ---------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        services = [f"tcp://{self.host}:{self.port}"]
        if self.ssl_port:
            services.append(f"ssl://{self.host}:{self.ssl_port}")
        services.append(f"rpc://127.0.0.1:{self.admin_port}")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        env.update({
            "COIN": "Bitcoin", "NET": "regtest", "DB_ENGINE": "leveldb",
            "DAEMON_URL": self.daemon_url(), "DB_DIRECTORY": str(self.db_dir / "db"),
            "SERVICES": ",".join(services), "PEER_DISCOVERY": "off", "PEER_ANNOUNCE": "",
            "ALLOW_ROOT": "1", "CACHE_MB": str(self.cache_mb),
            "DAEMON_POLL_INTERVAL_BLOCKS": str(self.poll_ms),
            "DAEMON_POLL_INTERVAL_MEMPOOL": str(self.poll_ms),
            # A local test network: one client may well ask for a lot (a wallet with 10,000
            # transactions); do not throttle it as a public server would.
            "COST_SOFT_LIMIT": "0", "COST_HARD_LIMIT": "0", "INITIAL_CONCURRENT": "1000",
            "MAX_SEND": str(50_000_000),
        })
        if self.ssl_port:
            env["SSL_CERTFILE"] = str(self.cert_file)
            env["SSL_KEYFILE"] = str(self.key_file)
        if self.banner is not None:
            banner_file = self.db_dir / "banner.txt"
            banner_file.write_text(self.banner)
            env["BANNER_FILE"] = str(banner_file)
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 600) -> ElectrumService:
        """Start ElectrumX and return once it answers (it listens only after it has indexed
        the node's chain: a cold start over a long chain takes a while)."""
        if not electrumx_available():
            raise ElectrumError("ElectrumX is not installed: pip install 'minibtc[electrum]' "
                                "(the e-x package)")
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.check_node()
        (self.db_dir / "db").mkdir(parents=True, exist_ok=True)
        if self.ssl_port and not (self.cert_file.exists() and self.key_file.exists()):
            make_self_signed_cert(self.cert_file, self.key_file, self.host)
        self.admin_port = _free_port()
        env = self.environment()
        self._auth_used = env["DAEMON_URL"]
        log = open(self.log_file, "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(self.flush_delay),
                 "1" if self.fast_json else "0"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        finally:
            log.close()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        if self.follow_cookie:
            self._stop_watching.clear()
            self._watcher = threading.Thread(target=self._watch_cookie, daemon=True,
                                             name=f"electrum-cookie-{self.port}")
            self._watcher.start()
        return self

    def node_call(self, method: str, *params):
        """One JSON-RPC call to the node (with the service's credentials)."""
        url = self.daemon_url()
        creds, _, hostpart = url[len("http://"):].rpartition("@")
        creds = ":".join(urllib.parse.unquote(c) for c in creds.split(":", 1))
        req = urllib.request.Request(
            "http://" + hostpart,
            json.dumps({"jsonrpc": "1.0", "id": 1, "method": method,
                        "params": list(params)}).encode(),
            {"Authorization": "Basic " + base64.b64encode(creds.encode()).decode(),
             "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                reply = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            try:
                reply = json.loads(err.read())
            except ValueError:
                raise ElectrumError(f"the node at {hostpart} answered HTTP {err.code}") from None
        except OSError as err:
            raise ElectrumError(f"cannot reach the node's RPC at {hostpart}: {err}") from None
        if reply.get("error"):
            raise ElectrumError(f"the node's {method}: {reply['error'].get('message')}")
        return reply["result"]

    def check_node(self) -> None:
        """ElectrumX 2 refuses a node without -txindex and -txospenderindex (it asks the node
        for transactions and spenders): say so before starting it."""
        indexes = self.node_call("getindexinfo")
        missing = [name for name in ("txindex", "txospenderindex") if name not in indexes]
        if missing:
            raise ElectrumError("the node must run with " + " ".join(f"-{m}" for m in missing)
                                + " for ElectrumX (it asks the node for transactions and "
                                "for the spenders of outputs)")

    def wait_ready(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise ElectrumError(f"ElectrumX exited with {code}: {self.log_tail()}")
            try:
                with ElectrumClient(self.host, self.port, timeout=5):
                    return
            except (OSError, ElectrumError):
                pass
            if time.monotonic() > deadline:
                raise ElectrumError(f"ElectrumX did not answer on {self.url} within "
                                    f"{timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.1)

    def wait_synced(self, height: int, timeout: float = 60) -> None:
        """Wait until the server's tip is at `height` (the node's, usually)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            with ElectrumClient(self.host, self.port, timeout=5) as c:
                last = c.call("blockchain.headers.subscribe")["height"]
            if last == height:
                return
            time.sleep(0.05)
        raise ElectrumError(f"ElectrumX at height {last}, not {height}, after {timeout:.0f} s")

    def admin(self, method: str, *params):
        """ElectrumX's local admin RPC (what electrumx_rpc sends)."""
        if self.admin_port is None:
            raise ElectrumError("ElectrumX is not running")
        with ElectrumClient("127.0.0.1", self.admin_port, timeout=30, protocol=None) as c:
            return c.call(method, *params)

    def refresh_auth(self) -> None:
        """Give ElectrumX the node's current credentials (a restarted node writes a new
        cookie; ElectrumX keeps retrying with the old one until told). Done by itself while
        the service runs with follow_cookie."""
        url = self.daemon_url()
        self.admin("daemon_url", url)
        self._auth_used = url

    def stop(self, timeout: float = 60) -> int | None:
        self._stop_watching.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(10)
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # ElectrumX flushes its index and exits
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> ElectrumService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ElectrumClient:
    """A blocking Electrum protocol client: call() waits for its answer; notifications that
    arrive meanwhile are kept for notification(). It introduces itself (server.version, which
    ElectrumX requires first) unless `protocol` is None (ElectrumX's admin port)."""

    def __init__(self, host: str, port: int, *, use_ssl: bool = False,
                 timeout: float = 30, cafile: str | None = None,
                 protocol: str | None = "1.4", name: str = "minibtc") -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        if use_ssl:
            ctx = ssl.create_default_context(cafile=cafile)
            if cafile is None:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.timeout = timeout
        self.buf = b""
        self.next_id = 0
        self.notifications: deque[dict] = deque()
        self.server_version: list | None = None
        if protocol is not None:
            try:
                self.server_version = self.call("server.version", name, protocol)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ElectrumClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_message(self, deadline: float) -> dict:
        end = self.buf.find(b"\n")
        while end < 0:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the Electrum server")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ElectrumError("the Electrum server closed the connection")
            seen = len(self.buf)
            self.buf += chunk
            end = self.buf.find(b"\n", seen)
        line, self.buf = self.buf[:end], self.buf[end + 1:]
        return orjson.loads(line)

    def send(self, method: str, *params) -> int:
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": list(params)}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        return self.next_id

    def call(self, method: str, *params):
        want = self.send(method, *params)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read_message(deadline)
            if "id" not in msg or msg.get("method"):
                self.notifications.append(msg)
                continue
            if msg["id"] != want:
                continue
            if msg.get("error"):
                err = msg["error"]
                raise ElectrumError(f"{method}: {err.get('message', err)} "
                                    f"(code {err.get('code')})")
            return msg["result"]

    def notification(self, method: str, timeout: float = 30) -> list:
        """The params of the next notification of `method` (waits for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in list(self.notifications):
                if msg.get("method") == method:
                    self.notifications.remove(msg)
                    return msg["params"]
            self.notifications.append(self._read_message(deadline))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m regtest.electrum",
        description="Run ElectrumX beside a minibtcd (started with -txindex -txospenderindex) "
                    "until Ctrl-C.")
    ap.add_argument("--datadir", required=True, help="the node's datadir")
    ap.add_argument("--chain", default="regtest")
    ap.add_argument("--rpcport", type=int, default=18443)
    ap.add_argument("--port", type=int, default=50001, help="Electrum TCP port")
    ap.add_argument("--ssl-port", type=int, default=None, help="also serve TLS on this port")
    ap.add_argument("--db-dir", default=None, help="default: <datadir>/<chain>/electrumx")
    args = ap.parse_args(argv)
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)  # stop ElectrumX too when stopped with kill
    chain_dir = Path(args.datadir).expanduser() / args.chain
    svc = ElectrumService(chain_dir, args.rpcport, chain_dir / ".cookie", args.port,
                          args.db_dir, ssl_port=args.ssl_port)
    try:
        svc.start()
    except ElectrumError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(svc.url + (f" {svc.ssl_url}" if svc.ssl_url else ""), flush=True)
    try:
        while svc.proc is not None and svc.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        svc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
