"""network.json written by several processes at once (the supervisor marking nodes down,
partition, heal, link): every change kept, no writer failing on another's temporary file."""

import multiprocessing

from regtest.network import Network, Spec

ROUNDS = 40


def _writer(folder: str, who: int) -> None:
    net = Network(folder)
    for k in range(ROUNDS):
        with net.edit() as spec:
            spec.down[f"{who}-{k}"] = "SIGKILL"


def test_concurrent_edits_lose_nothing(tmp_path) -> None:
    net = Network(tmp_path)
    net.create(3, "line", [])
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), who)) for who in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0] * 4
    down = Spec.load(tmp_path / "network.json").down
    assert sorted(down) == sorted(f"{w}-{k}" for w in range(4) for k in range(ROUNDS))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["network.json", "network.json.lock"]


def test_nested_edits_and_a_failed_one(tmp_path) -> None:
    net = Network(tmp_path)
    net.create(2, "line", [])
    with net.edit() as spec:
        net.add_nodes(1)  # (an edit inside an edit: one read, one write)
        spec.topology = "ring"
    other = Network(tmp_path)
    assert (other.spec.nodes, other.spec.topology) == (3, "ring")
    try:
        with net.edit() as spec:
            spec.topology = "mesh"
            raise RuntimeError("changed my mind")
    except RuntimeError:
        pass
    assert net.spec.topology == "ring" and Spec.load(net.spec_path).topology == "ring"


def test_free_port_stays_in_minibtc_port_range(monkeypatch):
    """MINIBTC_PORT_RANGE keeps minibtc-net's ports apart from another process's (the test
    suite's parallel workers each get one); a malformed range is a clear error."""
    import pytest

    from regtest import network

    monkeypatch.setenv("MINIBTC_PORT_RANGE", "24100-24139")
    monkeypatch.setattr(network, "_handed_out", set())
    ports = [network.free_port() for _ in range(30)]
    assert all(24100 <= p <= 24139 for p in ports) and len(set(ports)) == 30
    for bad in ("24100", "x-y", "30000-20000", "80-90"):
        monkeypatch.setenv("MINIBTC_PORT_RANGE", bad)
        with pytest.raises(network.NetworkError, match="MINIBTC_PORT_RANGE"):
            network.free_port()
