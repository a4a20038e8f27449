#!/bin/sh
# A container's node: minibtcd on regtest with the RPC login the compose file uses. minibtcd,
# as Bitcoin Core, creates no wallet by itself; like minibtc-net, the container gives its node
# a "default" wallet (created at first start, then loaded by the node at every start:
# load_on_startup). Arguments are minibtcd's (e.g. -addnode=node0:18444).
cli() { minibtc-cli -regtest -rpcuser=minibtc -rpcpassword=minibtc "$@"; }
( cli -rpcwait -rpcwaittimeout=300 loadwallet default true \
    || cli -named createwallet wallet_name=default load_on_startup=true ) >/dev/null 2>&1 &
exec minibtcd -regtest -datadir=/data -printtoconsole -rpcbind=0.0.0.0 -rpcallowip=0.0.0.0/0 \
    -rpcuser=minibtc -rpcpassword=minibtc -fallbackfee=0.0002 "$@"
