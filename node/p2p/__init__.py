"""P2P networking on Bitcoin's wire protocol: messages (codec), netaddr, peer, connman,
addrman, banman, sync (headers and blocks), relay (inventory gossip), manager (handshake,
dispatch, misbehaviour)."""
