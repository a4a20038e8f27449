"""On-disk storage: block files, the block index and the UTXO set (see layout.py)."""
