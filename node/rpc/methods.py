"""Importing this module registers every RPC method."""

from node.rpc import (  # noqa: F401
    blockchain,
    control,
    index,
    mempool,
    mining,
    net,
    psbt,
    rawtransactions,
    signing,
    txoutproof,
    util,
)
