"""JSON-RPC server and its methods, one module per area (as Bitcoin Core groups them)."""
