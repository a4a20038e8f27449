"""Importing this module registers every RPC method."""

from node.rpc import blockchain, control, rawtransactions, util  # noqa: F401
