"""Importing this module registers every RPC method."""

from node.rpc import (  # noqa: F401
    activity,
    blockchain,
    control,
    index,
    mempool,
    mining,
    net,
    prune,
    psbt,
    rawtransactions,
    signing,
    txoutproof,
    txoutset,
    util,
    zmq,
)
