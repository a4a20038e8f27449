"""minibtc wallet package.

Pure code (no I/O): base58, bech32 (BIP173/BIP350), address (addresses <-> scriptPubKeys, WIF),
keys (secp256k1 and Taproot helpers), bip32, bip39 (on the `mnemonic` package), descriptors
(BIP380-386), psbt (BIP174/371), coinselect.

The wallet itself: db (one sqlite3 file per wallet), crypto (encryption at rest), accounts
(descriptors, look-ahead), wallet (keys, transactions, balances), sync (following the node),
spend and signer (building, signing, bumping), rpc (Core's wallet methods), service (the
loaded wallets, what minibtcd mounts), server (`minibtc-wallet serve`) and cli.

The wallet reaches a node only through JSON-RPC (nodeclient) and never imports `node`.
"""
