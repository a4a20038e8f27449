"""BDK (bdkpython) set-up shared by the tests that drive a BDK wallet against minibtcd
(test_bdk: Esplora, test_electrum: ElectrumX, test_cfilters: Kyoto, BIP157) and by
scripts/bench/filterindex.py. bdkpython is imported when a helper is called, so importing
this module never needs it (the tests skip without it)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

ENTROPY = bytes(range(16))  # a fixed, known wallet


def bip84_wallet(mnemonic: str | None = None, entropy: bytes = ENTROPY):  # noqa: ANN201
    """An in-memory regtest BIP84 wallet (receive and change keychains) of a mnemonic, or
    of the BIP39 entropy given."""
    import bdkpython as bdk

    words = (bdk.Mnemonic.from_string(mnemonic) if mnemonic is not None
             else bdk.Mnemonic.from_entropy(entropy))
    key = bdk.DescriptorSecretKey(bdk.NetworkKind.TEST, words, None)
    return bdk.Wallet(
        bdk.Descriptor.new_bip84(key, bdk.KeychainKind.EXTERNAL, bdk.NetworkKind.TEST),
        bdk.Descriptor.new_bip84(key, bdk.KeychainKind.INTERNAL, bdk.NetworkKind.TEST),
        bdk.Network.REGTEST, bdk.Persister.new_in_memory())


def next_address(wallet) -> str:  # noqa: ANN001
    import bdkpython as bdk

    return str(wallet.reveal_next_address(bdk.KeychainKind.EXTERNAL).address)


def kyoto(wallet, p2p_port: int, data_dir: Path):  # noqa: ANN001, ANN201
    """Kyoto (BDK's BIP157 light client) for the wallet, with the node on 127.0.0.1:p2p_port
    as its only peer (v1 transport), running: its parts (.client, .node)."""
    import bdkpython as bdk

    peer = bdk.Peer(address=bdk.IpAddress.from_ipv4(127, 0, 0, 1), port=p2p_port,
                    v2_transport=False)
    parts = (bdk.CbfBuilder().peers([peer]).connections(1).only_configured_peers()
             .data_dir(str(data_dir)).build(wallet))
    parts.node.run()
    return parts


class KyotoEvents:
    """Kyoto's info and warning events read while the block runs (the client stalls if nobody
    reads them), the last ones kept in `seen` to explain a failure."""

    def __init__(self, client) -> None:  # noqa: ANN001
        self.client = client
        self.tasks: list[asyncio.Future] = []
        self.seen: list[str] = []

    async def __aenter__(self) -> KyotoEvents:
        async def drain(next_event) -> None:  # noqa: ANN001
            while True:
                event = await next_event()
                self.seen = self.seen[-99:] + [f"{time.strftime('%H:%M:%S')} {event}"]

        self.tasks = [asyncio.ensure_future(drain(self.client.next_info)),
                      asyncio.ensure_future(drain(self.client.next_warning))]
        return self

    async def __aexit__(self, *exc) -> None:  # noqa: ANN002
        for t in self.tasks:
            t.cancel()


def stop(client) -> None:  # noqa: ANN001
    """Shut a Kyoto client down. One that has stopped already (it may stop by itself once
    KyotoEvents no longer reads its events) answers NodeStopped: nothing left to stop."""
    import bdkpython as bdk

    try:
        client.shutdown()
    except bdk.CbfError.NodeStopped:
        pass
