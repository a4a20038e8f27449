"""Network RPCs (Core's rpc/net.cpp): getconnectioncount, ping, getpeerinfo, addnode,
disconnectnode, getaddednodeinfo, getnettotals, getnetworkinfo, setban, listbanned,
clearbanned, setnetworkactive, getnodeaddresses, addpeeraddress, getaddrmaninfo,
getrawaddrman and sendmsgtopeer.

They run on the event loop (inline), where the P2P state lives, and never wait.
"""

from __future__ import annotations

import time

from node.p2p import messages as m
from node.p2p import permissions as perm
from node.p2p.banman import parse_subnet
from node.p2p.connman import ADDR_FETCH, BLOCK_RELAY, FEELER
from node.p2p.netaddr import NET_NAMES, AddressError, NetAddr
from node.p2p.sync import last_common_ancestor
from node.rpc.errors import (
    RPC_CLIENT_INVALID_IP_OR_SUBNET,
    RPC_CLIENT_NODE_ALREADY_ADDED,
    RPC_CLIENT_NODE_NOT_ADDED,
    RPC_CLIENT_NODE_NOT_CONNECTED,
    RPC_CLIENT_P2P_DISABLED,
    RPC_INVALID_PARAMETER,
    RPC_INVALID_PARAMS,
    RPC_MISC_ERROR,
    RPCError,
)
from node.rpc.jsonutil import btc, double
from node.rpc.params import as_int
from node.rpc.registry import BOOL, HEX, NUM, REGISTRY, STR, Arg, rpc

RPC_CLIENT_NODE_CAPACITY_REACHED = -34

SERVICE_NAMES = ((m.NODE_NETWORK, "NETWORK"), (m.NODE_BLOOM, "BLOOM"), (m.NODE_WITNESS, "WITNESS"),
                 (1 << 6, "COMPACT_FILTERS"), (m.NODE_NETWORK_LIMITED, "NETWORK_LIMITED"),
                 (1 << 11, "P2P_V2"))


def _p2p(node):
    if node.p2p is None:
        raise RPCError(RPC_CLIENT_P2P_DISABLED, "Error: Peer-to-peer functionality missing or "
                                                "disabled")
    return node.p2p


NODE_P2P_V2 = 1 << 11


def service_names(services: int) -> list[str]:
    return [name for bit, name in SERVICE_NAMES if services & bit]


def client_version() -> int:
    """getnetworkinfo's version: the Bitcoin Core interface minibtcd implements, in Core's
    CLIENT_VERSION encoding (10,000 * major + 100 * minor + build: 310000 for 31.0.0), which
    clients such as ElectrumX check. minibtc's own version is in the user agent (subversion)."""
    from node.daemon import CORE_INTERFACE_VERSION

    major, minor, build = (int(x) for x in CORE_INTERFACE_VERSION.split("."))
    return major * 10_000 + minor * 100 + build


@rpc("getconnectioncount", "Network", description="Returns the number of connections to other "
                                                  "nodes.", inline=True,
     result="n    (numeric) The connection count")
def getconnectioncount(node):
    return _p2p(node).connman.count()


@rpc("ping", "Network", inline=True,
     description="Requests that a ping be sent to all other nodes, to measure ping time.\n"
                 "Results provided in getpeerinfo, pingtime and pingwait fields are decimal "
                 "seconds.\nPing command is handled in queue with all other commands, so it "
                 "measures processing backlog, not just network ping.")
def ping(node):
    _p2p(node).ping_all()
    return None


def _peer_json(p2p, peer) -> dict:
    tip = p2p.chain.published
    v = peer.version
    now = time.monotonic()
    synced_blocks = -1
    if peer.best_known is not None and tip is not None:
        synced_blocks = last_common_ancestor(peer.best_known, tip).height
    out = {"id": peer.id, "addr": peer.added_name or str(peer.addr),
           "addrbind": str(peer.addr_bind)}
    if peer.addr_local:
        out["addrlocal"] = peer.addr_local
    out.update({
        "network": peer.addr.network if peer.addr.is_routable() else "not_publicly_routable",
        "services": f"{peer.services:016x}",
        "servicesnames": service_names(peer.services),
        "relaytxes": peer.relay_txs,
        "relaytxpackages": False,
        "lastsend": int(peer.last_send),
        "lastrecv": int(peer.last_recv),
        "last_transaction": peer.last_tx_time,
        "last_block": peer.last_block_time,
        "bytessent": peer.bytes_sent,
        "bytesrecv": peer.bytes_recv,
        "conntime": int(peer.connected_at),
        "timeoffset": peer.time_offset,
    })
    if peer.ping_time is not None:
        out["pingtime"] = double(peer.ping_time)
    if peer.min_ping is not None:
        out["minping"] = double(peer.min_ping)
    if peer.ping_nonce:
        out["pingwait"] = double(now - peer.ping_sent_at)
    in_flight = [p2p.chain.get(h) for h in peer.in_flight]
    out.update({
        "version": v.version if v else 0,
        "subver": _clean(v.user_agent) if v else "",
        "inbound": peer.inbound,
        "bip152_hb_to": peer.hb_to,
        "bip152_hb_from": peer.hb_requested,
        "startingheight": v.start_height if v else -1,
        "presynced_headers": -1,
        "synced_headers": peer.best_known.height if peer.best_known is not None else -1,
        "synced_blocks": synced_blocks,
        "inflight": sorted(e.height for e in in_flight if e is not None),
        "addr_relay_enabled": peer.conn_type != BLOCK_RELAY,
        "addr_processed": peer.addr_processed,
        "addr_rate_limited": peer.addr_rate_limited,
        "permissions": perm.names(getattr(peer, "permissions", 0)),
        "minfeefilter": btc(peer.fee_filter),
        "bytessent_per_msg": dict(sorted(peer.sent_per_msg.items())),
        "bytesrecv_per_msg": dict(sorted(peer.recv_per_msg.items())),
        "connection_type": peer.conn_type,
        "transport_protocol_type": peer.transport_type,
        "session_id": peer.session_id,
    })
    return out


def _clean(s: str) -> str:
    """Core's SanitizeString for the user agent: printable safe characters only."""
    return "".join(c for c in s if c.isalnum() or c in " .,;-_/:?@()")


@rpc("getpeerinfo", "Network", inline=True,
     description="Returns data about each connected network peer as a json array of objects.")
def getpeerinfo(node):
    p2p = _p2p(node)
    return [_peer_json(p2p, p) for p in sorted(p2p.connman.peers.values(), key=lambda p: p.id)
            if not p.closed]


@rpc("addnode", "Network",
     [Arg("node", STR, help="The node (see getpeerinfo for nodes)"),
      Arg("command", STR, help="'add' to add a node to the list, 'remove' to remove a node from "
                               "the list, 'onetry' to try a connection to the node once"),
      Arg("v2transport", BOOL, False, None, "Attempt to connect using BIP324 v2 transport "
                                            "protocol (ignored for 'remove' command)",
          default_hint="set by -v2transport")],
     description="Attempts to add or remove a node from the addnode list.\nOr try a connection "
                 "to a node once.\nNodes added using addnode (or -connect) are protected from "
                 "DoS disconnection and are not required to be\nfull nodes/support SegWit as "
                 "other outbound peers are (though such peers will not be synced from).",
     examples=['addnode "192.168.0.6:18444" "onetry"'], inline=True)
def addnode(node, node_, command, v2transport):
    if command not in ("add", "remove", "onetry"):
        raise RPCError(RPC_MISC_ERROR, REGISTRY["addnode"].help_text())
    cm = _p2p(node).connman
    use_v2 = cm.v2_enabled if v2transport is None else bool(v2transport)
    if use_v2 and not cm.v2_enabled:
        raise RPCError(RPC_INVALID_PARAMETER, "Error: v2transport requested but not enabled "
                                              "(see -v2transport)")
    if command == "onetry":
        if cm.connected_to(node_) is None:  # (Core: not a second connection to it)
            cm._spawn(cm.dial(node_, use_v2=use_v2))
        return None
    if command == "add":
        if node_ in cm.added:
            raise RPCError(RPC_CLIENT_NODE_ALREADY_ADDED, "Error: Node already added")
        cm.added.append(node_)
        cm.added_v2[node_] = use_v2
        if cm.connected_to(node_) is None and node_ not in cm.connecting:
            cm.connecting.add(node_)
            cm._spawn(cm._dial_added(node_))  # now, not at the next retry
        return None
    if node_ not in cm.added:
        raise RPCError(RPC_CLIENT_NODE_NOT_ADDED, "Error: Node could not be removed. It has not "
                                                  "been added previously.")
    cm.added.remove(node_)
    return None


@rpc("addconnection", "Hidden",
     [Arg("address", STR, help="The IP address and port to attempt connecting to."),
      Arg("connection_type", STR, help="Type of connection to open (\"outbound-full-relay\", "
                                       "\"block-relay-only\", \"addr-fetch\" or \"feeler\")."),
      Arg("v2transport", BOOL, help="Attempt to connect using BIP324 v2 transport protocol")],
     description="Open an outbound connection to a specified node. This RPC is for testing "
                 "only.",
     examples=['addconnection "192.168.0.6:8333" "outbound-full-relay" true'], inline=True)
def addconnection(node, address, connection_type, v2transport):
    if node.params.name != "regtest":
        raise RPCError(RPC_MISC_ERROR, "addconnection is for regression testing (-regtest "
                                       "mode) only.")
    conn_type = connection_type.strip()
    if conn_type not in ("outbound-full-relay", BLOCK_RELAY, ADDR_FETCH, FEELER):
        raise RPCError(RPC_INVALID_PARAMETER, REGISTRY["addconnection"].help_text())
    p2p = _p2p(node)
    if v2transport and not p2p.local_services & NODE_P2P_V2:
        raise RPCError(RPC_INVALID_PARAMETER, "Error: Adding v2transport connections requires "
                                              "-v2transport init flag to be set.")
    if not p2p.connman.add_connection(address, conn_type, bool(v2transport)):
        raise RPCError(RPC_CLIENT_NODE_CAPACITY_REACHED, "Error: Already at capacity for "
                                                         "specified connection type.")
    return {"address": address, "connection_type": conn_type}


@rpc("disconnectnode", "Network",
     [Arg("address", STR, False, None, "The IP address/port of the node",
          default_hint="fallback to nodeid"),
      Arg("nodeid", NUM, False, None, "The node ID (see getpeerinfo for node IDs)",
          default_hint="fallback to address")],
     description="Immediately disconnects from the specified peer node.\n\nStrictly one out of "
                 "'address' and 'nodeid' can be provided to identify the node.\n\nTo disconnect "
                 "by nodeid, either set 'address' to the empty string, or call using the named "
                 "'nodeid' argument only.", inline=True)
def disconnectnode(node, address, nodeid):
    cm = _p2p(node).connman
    if address is not None and nodeid is None:
        n = cm.disconnect_matching(lambda p: str(p.addr) == address or p.added_name == address,
                                   "disconnectnode")
    elif nodeid is not None and (address is None or address == ""):
        pid = as_int(nodeid, "nodeid")
        n = cm.disconnect_matching(lambda p: p.id == pid, "disconnectnode")
    else:
        raise RPCError(RPC_INVALID_PARAMS, "Only one of address and nodeid should be provided.")
    if not n:
        raise RPCError(RPC_CLIENT_NODE_NOT_CONNECTED, "Node not found in connected nodes")
    return None


@rpc("getaddednodeinfo", "Network",
     [Arg("node", STR, False, None, "If provided, return information about this specific node, "
                                    "otherwise all nodes are returned.",
          default_hint="all nodes")],
     description="Returns information about the given added node, or all added nodes\n(note "
                 "that onetry addnodes are not listed here)", inline=True)
def getaddednodeinfo(node, node_):
    cm = _p2p(node).connman
    names = list(cm.added)
    if node_ is not None:
        if node_ not in names:
            raise RPCError(RPC_CLIENT_NODE_NOT_ADDED, "Error: Node has not been added.")
        names = [node_]
    out = []
    for name in names:
        peer = cm.connected_to(name)
        addresses = [] if peer is None else [
            {"address": str(peer.addr), "connected": "inbound" if peer.inbound else "outbound"}]
        out.append({"addednode": name, "connected": peer is not None, "addresses": addresses})
    return out


@rpc("getnettotals", "Network", inline=True,
     description="Returns information about network traffic, including bytes in, bytes out,\n"
                 "and current system time.")
def getnettotals(node):
    recv, sent = _p2p(node).connman.totals()
    return {
        "totalbytesrecv": recv,
        "totalbytessent": sent,
        "timemillis": int(time.time() * 1000),
        "uploadtarget": {"timeframe": 86400, "target": 0, "target_reached": False,
                         "serve_historical_blocks": True, "bytes_left_in_cycle": 0,
                         "time_left_in_cycle": 0},
    }


@rpc("getnetworkinfo", "Network", inline=True,
     description="Returns an object containing various state info regarding P2P networking.")
def getnetworkinfo(node):
    p2p = _p2p(node)
    cm = p2p.connman
    reachable = {"ipv4", "ipv6"}
    offsets = sorted(p.time_offset for p in p2p.peers() if not p.inbound)
    return {
        "version": client_version(),
        "subversion": p2p.user_agent,
        "protocolversion": m.PROTOCOL_VERSION,
        "localservices": f"{p2p.local_services:016x}",
        "localservicesnames": service_names(p2p.local_services),
        "localrelay": not p2p.blocksonly,
        "timeoffset": offsets[len(offsets) // 2] if offsets else 0,
        "networkactive": cm.network_active,
        "connections": cm.count(),
        "connections_in": cm.count(inbound=True),
        "connections_out": cm.count(inbound=False),
        "networks": [{"name": name, "limited": name not in reachable,
                      "reachable": name in reachable, "proxy": "",
                      "proxy_randomize_credentials": False}
                     for name in NET_NAMES.values()],
        "relayfee": btc(node.mempool.min_relay_fee),
        "incrementalfee": btc(node.mempool.incremental_relay_fee),
        "localaddresses": [],
        "warnings": [],
    }


@rpc("setban", "Network",
     [Arg("subnet", STR, help="The IP/Subnet (see getpeerinfo for nodes IP) with an optional "
                              "netmask (default is /32 = single IP)"),
      Arg("command", STR, help="'add' to add an IP/Subnet to the list, 'remove' to remove an "
                               "IP/Subnet from the list"),
      Arg("bantime", NUM, False, 0, "time in seconds how long (or until when if [absolute] is "
                                    "set) the IP is banned (0 or empty means using the default "
                                    "time of 24h)"),
      Arg("absolute", BOOL, False, False, "If set, the bantime must be an absolute timestamp "
                                          "expressed in UNIX epoch time")],
     description="Attempts to add or remove an IP/Subnet from the banned list.",
     examples=['setban "192.168.0.6" "add" 86400', 'setban "192.168.0.0/24" "add"'],
     inline=True)
def setban(node, subnet, command, bantime, absolute):
    if command not in ("add", "remove"):
        raise RPCError(RPC_MISC_ERROR, REGISTRY["setban"].help_text())
    p2p = _p2p(node)
    try:
        net = parse_subnet(subnet)
    except ValueError:
        raise RPCError(RPC_CLIENT_INVALID_IP_OR_SUBNET, "Error: Invalid IP/Subnet") from None
    banman = p2p.banman
    if command == "remove":
        if not banman.unban(net):
            raise RPCError(RPC_CLIENT_INVALID_IP_OR_SUBNET, "Error: Unban failed. Requested "
                           "address/subnet was not previously manually banned.")
        return None
    single = "/" not in subnet
    if (banman.is_banned(net.network_address) if single else net in dict(banman.list())):
        raise RPCError(RPC_CLIENT_NODE_ALREADY_ADDED, "Error: IP/Subnet already banned")
    seconds = as_int(bantime, "bantime")
    if absolute and seconds < time.time():
        raise RPCError(RPC_INVALID_PARAMETER, "Error: Absolute timestamp is in the past")
    banman.ban(net, seconds, bool(absolute))
    p2p.connman.disconnect_matching(
        lambda p: p.addr.ip is not None and p.addr.ip.version == net.version
        and p.addr.ip in net, "banned")
    return None


@rpc("listbanned", "Network", description="List all manually banned IPs/Subnets.", inline=True)
def listbanned(node):
    now = int(time.time())
    return [{"address": str(net), "ban_created": e.created, "banned_until": e.until,
             "ban_duration": e.until - e.created, "time_remaining": e.until - now}
            for net, e in _p2p(node).banman.list()]


@rpc("clearbanned", "Network", description="Clear all banned IPs.", inline=True)
def clearbanned(node):
    _p2p(node).banman.clear()
    return None


@rpc("setnetworkactive", "Network",
     [Arg("state", BOOL, help="true to enable networking, false to disable")],
     description="Disable/enable all p2p network activity.", inline=True,
     result="true|false    (boolean) The value that was passed in")
def setnetworkactive(node, state):
    cm = _p2p(node).connman
    cm.set_network_active(bool(state))
    return cm.network_active


@rpc("getnodeaddresses", "Network",
     [Arg("count", NUM, False, 1, "The maximum number of addresses to return. Specify 0 to "
                                  "return all known addresses."),
      Arg("network", STR, False, None, "Return only addresses of the specified network. Can be "
                                       "one of: ipv4, ipv6, onion, i2p, cjdns.",
          default_hint="all networks")],
     description="Return known addresses, after filtering for quality and recency.\nThese can "
                 "potentially be used to find new peers in the network.\nThe total number of "
                 "addresses known to the node may be higher.", inline=True)
def getnodeaddresses(node, count, network):
    n = as_int(count, "count")
    if n < 0:
        raise RPCError(RPC_INVALID_PARAMETER, "Address count out of range")
    net_id = None
    if network is not None:
        ids = {name: i for i, name in NET_NAMES.items()}
        if network not in ids:
            raise RPCError(RPC_INVALID_PARAMETER, f"Network not recognized: {network}")
        net_id = ids[network]
    addrs = _p2p(node).addrman.get_addr(n, 0, net_id)
    return [{"time": a.time, "services": a.services, "address": a.host(), "port": a.port,
             "network": a.network} for a in addrs]


@rpc("addpeeraddress", "Hidden",
     [Arg("address", STR, help="The IP address of the peer"),
      Arg("port", NUM, help="The port of the peer"),
      Arg("tried", BOOL, False, False, "If true, attempt to add the peer to the tried addresses "
                                       "table")],
     description="Add the address of a potential peer to the address manager. This RPC is for "
                 "testing only.", inline=True)
def addpeeraddress(node, address, port, tried):
    addrman = _p2p(node).addrman
    p = as_int(port, "port")
    if not 0 <= p <= 65535:
        raise RPCError(RPC_INVALID_PARAMETER, "JSON integer out of range")
    try:
        a = NetAddr.from_ip(address, p, m.NODE_NETWORK | m.NODE_WITNESS)
    except AddressError:
        return {"success": False}
    a.time = int(time.time())
    ok = addrman.add([a], a.host()) > 0
    if ok and tried:
        addrman.good(a)
    return {"success": ok}


# -- the address manager: getaddrmaninfo, getrawaddrman; sendmsgtopeer -----------------------

def _addrman(node):
    p2p = getattr(node, "p2p", None)
    if p2p is None or getattr(p2p, "addrman", None) is None:
        raise RPCError(RPC_CLIENT_P2P_DISABLED, "Error: Address manager functionality missing "
                                                "or disabled")
    return p2p.addrman


@rpc("getaddrmaninfo", "Network", inline=True,
     description="Provides information about the node's address manager by returning the "
                 "number of addresses in the `new` and `tried` tables and their sum for all "
                 "networks.",
     result='{ "<network>": { "new": n, "tried": n, "total": n }, ... }    (ipv4, ipv6, '
            "onion, i2p, cjdns, all_networks)")
def getaddrmaninfo(node):
    book = _addrman(node)
    counts = {name: [0, 0] for name in NET_NAMES.values()}
    for info in book.entries.values():
        c = counts.get(NET_NAMES.get(info.addr.net))
        if c is not None:
            c[1 if info.tried else 0] += 1
    out = {name: {"new": n, "tried": t, "total": n + t} for name, (n, t) in counts.items()}
    new = sum(n for n, _ in counts.values())
    tried = sum(t for _, t in counts.values())
    out["all_networks"] = {"new": new, "tried": tried, "total": new + tried}
    return out


def _network_name(host: str) -> str:
    try:
        a = NetAddr.from_ip(host, 0)
    except AddressError:
        return "not_publicly_routable"
    return a.network if a.is_routable() else "not_publicly_routable"


# Core's tables: 1024 "new" and 256 "tried" buckets of 64 places each.
_BUCKET_SIZE = 64


@rpc("getrawaddrman", "Hidden", inline=True,
     description="EXPERIMENTAL warning: this call may be changed in future releases.\n\n"
                 "Returns information on all address manager entries for the new and tried "
                 "tables.\n\nminibtcd's address manager has one table with a tried flag "
                 "(node/p2p/addrman.py), not Core's hashed buckets: an entry's "
                 '"bucket/position" key is its place in that table, 64 to a bucket.',
     result='{ "new": { "bucket/position": { "address", "port", "network", "services", '
            '"time", "source", "source_network" } }, "tried": { ... } }')
def getrawaddrman(node):
    book = _addrman(node)
    tables: dict[str, dict] = {"new": {}, "tried": {}}
    for info in book.entries.values():
        table = tables["tried" if info.tried else "new"]
        i = len(table)
        a = info.addr
        source = info.source or a.host()  # an address announced by itself
        table[f"{i // _BUCKET_SIZE}/{i % _BUCKET_SIZE}"] = {
            "address": a.host(),
            "port": a.port,
            "services": a.services,
            "time": int(a.time),
            "network": a.network if a.is_routable() else "not_publicly_routable",
            "source": source,
            "source_network": _network_name(source),
        }
    return tables


COMMAND_SIZE = 12  # Core's CMessageHeader::COMMAND_SIZE


@rpc("sendmsgtopeer", "Hidden", inline=True,
     args=[Arg("peer_id", NUM, help="The peer to send the message to."),
           Arg("msg_type", STR, help=f"The message type (maximum length {COMMAND_SIZE})"),
           Arg("msg", HEX, help="The serialized message body to send, in hex, without a "
                                "message header")],
     description="Send a p2p message to a peer specified by id.\nThe message type and body "
                 "must be provided, the message header will be generated.\nThis RPC is for "
                 "testing only.",
     result="{}    (json object) empty")
def sendmsgtopeer(node, peer_id, msg_type, msg):
    pid = as_int(peer_id, "peer_id")
    if len(msg_type.encode()) > COMMAND_SIZE:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"Error: msg_type too long, max length is {COMMAND_SIZE}")
    if len(msg) % 2 or any(c not in "0123456789abcdefABCDEF" for c in msg):  # Core's IsHex
        raise RPCError(RPC_INVALID_PARAMETER, "Error parsing input for msg")
    payload = bytes.fromhex(msg)
    peer = _p2p(node).connman.peers.get(pid)
    if peer is None or peer.closed:
        raise RPCError(RPC_MISC_ERROR, "Error: Could not send message to peer")
    peer.send_raw(msg_type, payload)
    return {}
