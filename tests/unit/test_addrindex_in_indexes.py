"""The Esplora address index is one of the node's Indexes: getindexinfo lists it, it holds
the prune lock with the others, it is started, synced and closed with them."""

from consensus.params import REGTEST
from node.index import Indexes
from tests.chainbuilder import ChainBuilder
from tests.unit.test_chain import open_chain
from tests.unit.test_indexes import feed, wait_synced


def test_addrindex_with_the_others(tmp_path) -> None:
    cb = ChainBuilder()
    blocks = cb.chain(REGTEST.genesis, 12)
    chain = open_chain(tmp_path / "node")
    feed(chain, blocks[:8])
    ixs = Indexes.open(tmp_path / "node", chain, txindex=True, addrindex=True)
    try:
        assert ixs.addr is not None and ixs.addr in ixs.all
        assert (tmp_path / "node" / "indexes" / "addrindex" / "db").is_dir()
        assert ixs.prune_lock() == 0  # (not started: it still has every block to read)
        ixs.start()
        feed(chain, blocks[8:])
        wait_synced(ixs, chain)  # (block_until_synced, as Core's, does not wait for a first sync)
        assert ixs.info("addrindex") == {"addrindex": {"synced": True,
                                                       "best_block_height": 12}}
        assert set(ixs.info()) == {"txindex", "addrindex"}
        assert ixs.addr.lock_height == 12 and ixs.prune_lock() == 12
    finally:
        ixs.close()
    assert Indexes.open(tmp_path / "node", chain).addr is None  # (only when asked)
    chain.close()
