"""minibtc wallet package.

The address, key and descriptor layer is pure code (no I/O): base58, bech32 (BIP173/BIP350),
address (addresses <-> scriptPubKeys, WIF), keys (secp256k1 and Taproot helpers), bip32, bip39
and descriptors (BIP380-386); bip39 wraps the `mnemonic` package. The wallet reaches a node only through JSON-RPC and never imports
`node`.
"""
