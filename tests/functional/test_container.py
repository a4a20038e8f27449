"""The container image and compose file (regtest/container), built and run for real: the
compose network gossips a miner's blocks and a payment, and resumes from its volumes after a
stop; a node on a network of its own (another machine) syncs through a published port.
Skipped, saying why, where no Docker engine answers or no base image can be had
(python:3.11-slim neither local nor pullable, and regtest/container/debian-base cannot run)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.request
from decimal import Decimal

import pytest

from regtest.network import free_port
from tests.functional.framework import ROOT
from tests.functional.netutil import wait_until

CONTAINER = ROOT / "regtest" / "container"
IMAGE = "minibtc-test"
# -rpcwait: a node just started answers "in warmup" until its chain is loaded
CLI = ["minibtc-cli", "-regtest", "-rpcuser=minibtc", "-rpcpassword=minibtc", "-rpcwait",
       "-rpcwaittimeout=60"]


def _run(*args: str, timeout: float = 120, check: bool = True,
         env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def _engine() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command"
    r = _run("docker", "info", timeout=30, check=False)
    return None if r.returncode == 0 else "no Docker engine answers"


def _compose() -> list[str] | None:
    if _run("docker", "compose", "version", timeout=30, check=False).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def _base() -> str | None:
    """A base image for the Dockerfile: the default one where it can be had, else one made
    from Debian's packages (minibtc-base:bookworm, kept for later runs)."""
    for image in (os.environ.get("MINIBTC_BASE"), "python:3.11-slim", "minibtc-base:bookworm"):
        if image and _run("docker", "image", "inspect", image, check=False).returncode == 0:
            return image
    if _run("docker", "pull", "python:3.11-slim", timeout=120, check=False).returncode == 0:
        return "python:3.11-slim"
    if os.geteuid() == 0 and shutil.which("debootstrap"):
        r = _run(str(CONTAINER / "debian-base"), timeout=900, check=False)
        if r.returncode == 0:
            return r.stdout.strip()
    return None


WHY = _engine()
COMPOSE = _compose() if WHY is None else None
if WHY is None and COMPOSE is None:
    WHY = "no docker compose"
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or "")


@pytest.fixture(scope="module")
def base():
    image = _base()
    if image is None:
        pytest.skip("no base image: python:3.11-slim cannot be pulled and "
                    "regtest/container/debian-base cannot run (needs root and debootstrap)")
    return image


@pytest.fixture
def compose(base):
    """Runs docker compose on regtest/container/compose.yaml as a project of its own, with
    node0's RPC on a free host port and a miner every second or so; removed afterwards."""
    project = f"mbtest{os.getpid()}"
    env = dict(os.environ, MINIBTC_BASE=base, MINIBTC_IMAGE=IMAGE,
               MINIBTC_RPC_PORT=str(free_port()), MINIBTC_MINER_INTERVAL="1")

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return _run(*COMPOSE, "-f", str(CONTAINER / "compose.yaml"), "-p", project, *args,
                    timeout=timeout, env=env)

    run.port = int(env["MINIBTC_RPC_PORT"])
    yield run
    _run(*COMPOSE, "-f", str(CONTAINER / "compose.yaml"), "-p", project, "down", "-v",
         "--remove-orphans", timeout=120, check=False, env=env)


def _rpc(port: int, method: str, *params):
    """A JSON-RPC call from this machine to a published port, with the image's user."""
    auth = base64.b64encode(b"minibtc:minibtc").decode()
    body = json.dumps({"method": method, "params": list(params)}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", body, {
        "Authorization": f"Basic {auth}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read(), parse_float=Decimal)["result"]


def _answers(port: int) -> bool:
    try:
        return isinstance(_rpc(port, "getblockcount"), int)
    except OSError:  # (an HTTPError in warmup is one too)
        return False


def _result(out: str):
    """minibtc-cli's output as a value: JSON, or the bare string it prints for a string."""
    out = out.strip()
    try:
        return json.loads(out, parse_float=Decimal)
    except ValueError:
        return out


def _cli(compose, service: str, *args: str):
    return _result(compose("exec", "-T", service, *CLI, *args, timeout=60).stdout)


def _exit_code(container: str) -> int:
    return int(_run("docker", "inspect", "-f", "{{.State.ExitCode}}", container).stdout)


def test_compose_network_mines_pays_and_resumes(compose):
    compose("build", timeout=900)
    compose("up", "-d")
    wait_until(lambda: _answers(compose.port), 60, "node0's RPC on the published port")
    # The miner (a container of its own) finds blocks; the line node0-node1-node2 carries them.
    wait_until(lambda: _rpc(compose.port, "getblockcount") >= 3, 60, "the miner's blocks")
    wait_until(lambda: _cli(compose, "node2", "getbestblockhash")
               == _rpc(compose.port, "getbestblockhash"), 60, "node2 on node0's tip")
    assert _cli(compose, "node1", "getconnectioncount") == 2
    # The miner's coinbases pay node0's wallet; mature some and pay node2's.
    _rpc(compose.port, "generatetoaddress", 101, _rpc(compose.port, "getnewaddress"))
    # (each node's wallet is created by its entrypoint, beside the starting node)
    wait_until(lambda: _cli(compose, "node2", "listwallets") == ["default"], 60,
               "node2's wallet")
    to = _cli(compose, "node2", "getnewaddress")
    txid = _rpc(compose.port, "sendtoaddress", to, 1.5)
    wait_until(lambda: _cli(compose, "node2", "getbalance") == Decimal("1.5"), 60,
               "node2's wallet paid, once the miner confirms it")
    height = _cli(compose, "node2", "getblockcount")
    # docker stop sends SIGTERM: each node shuts down cleanly, and resumes from its volume.
    compose("stop", "-t", "30")
    for service in ("node0", "node1", "node2"):
        assert _exit_code(compose("ps", "-q", service).stdout.strip()) == 0, service
    compose("up", "-d")
    wait_until(lambda: _answers(compose.port), 60, "node0's RPC after the restart")
    wait_until(lambda: _cli(compose, "node2", "getblockcount") >= height, 30, "node2 resumed")
    assert _cli(compose, "node2", "getbalance") == Decimal("1.5")
    assert txid in [t["txid"] for t in _cli(compose, "node2", "listtransactions")]


def test_node_on_another_network_syncs_through_a_published_port(base):
    """Two machines, as Docker can show them on one: node A publishes its P2P port on this
    host; node B, on a bridge network of its own, reaches A only through that port."""
    tag = f"mbtest{os.getpid()}"
    p2p = free_port()
    net = f"{tag}-b"
    _run("docker", "build", "--build-arg", f"BASE={base}", "-f",
         str(CONTAINER / "Dockerfile"), "-t", IMAGE, str(ROOT), timeout=900)
    try:
        _run("docker", "run", "-d", "--name", f"{tag}-a", "-p", f"{p2p}:18444", IMAGE)
        _run("docker", "network", "create", net)
        _run("docker", "run", "-d", "--name", f"{tag}-b", "--network", net,
             "--add-host", "host.docker.internal:host-gateway", IMAGE,
             f"-addnode=host.docker.internal:{p2p}")

        def cli(name: str, *args: str):
            return _result(_run("docker", "exec", name, *CLI, *args, timeout=90).stdout)

        wait_until(lambda: cli(f"{tag}-b", "getconnectioncount") == 1, 60, "B dials A")
        wait_until(lambda: cli(f"{tag}-a", "listwallets") == ["default"], 60, "A's wallet")
        addr = cli(f"{tag}-a", "getnewaddress")
        cli(f"{tag}-a", "generatetoaddress", "5", addr)
        best = cli(f"{tag}-a", "getbestblockhash")
        wait_until(lambda: cli(f"{tag}-b", "getbestblockhash") == best, 60, "B syncs A's blocks")
        peer = cli(f"{tag}-b", "getpeerinfo")[0]
        assert peer["addr"].endswith(f":{p2p}") and not peer["inbound"]
    finally:
        _run("docker", "rm", "-f", "-v", f"{tag}-a", f"{tag}-b", check=False)
        _run("docker", "network", "rm", net, check=False)
