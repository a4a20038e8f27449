"""Which RPC arguments minibtc-cli parses as JSON: bitcoin-cli's vRPCConvertParams.

An argument whose declared type is not a plain string (numbers, booleans, amounts, arrays,
objects) is parsed as JSON on the command line; every other argument is sent as a string.

The table is static so that the CLI starts without importing the node's registry (which pulls
in pydantic, aiohttp and the consensus code). It is generated from node.rpc.registry and the
wallet's methods (wallet.rpc), and
tests/unit/test_cli_params.py fails whenever it differs from what the registry declares.
After adding or changing an RPC, regenerate it:

    python -m node.rpc.cli_params --write     # rewrite the table below
    python -m node.rpc.cli_params --check     # exit 1 (with a diff) if it is stale
"""

from __future__ import annotations

# method -> ((position, name), ...) of its JSON arguments.
# BEGIN GENERATED (python -m node.rpc.cli_params --write)
CONVERT_PARAMS: dict[str, tuple[tuple[int, str], ...]] = {
    "addconnection": ((2, "v2transport"),),
    "addnode": ((2, "v2transport"),),
    "addpeeraddress": ((1, "port"), (2, "tried")),
    "bumpfee": ((1, "options"),),
    "combinepsbt": ((0, "txs"),),
    "combinerawtransaction": ((0, "txs"),),
    "converttopsbt": ((1, "permitsigdata"), (2, "iswitness"), (3, "psbt_version")),
    "createmultisig": ((0, "nrequired"), (1, "keys")),
    "createpsbt": (
        (0, "inputs"),
        (1, "outputs"),
        (2, "locktime"),
        (3, "replaceable"),
        (4, "version"),
        (5, "psbt_version"),
    ),
    "createrawtransaction": (
        (0, "inputs"),
        (1, "outputs"),
        (2, "locktime"),
        (3, "replaceable"),
        (4, "version"),
    ),
    "createwallet": (
        (1, "disable_private_keys"),
        (2, "blank"),
        (4, "avoid_reuse"),
        (5, "descriptors"),
        (6, "load_on_startup"),
        (7, "external_signer"),
        (10, "birthday_height"),
    ),
    "createwalletdescriptor": ((1, "options"),),
    "decoderawtransaction": ((1, "iswitness"),),
    "deriveaddresses": ((1, "range"),),
    "descriptorprocesspsbt": ((1, "descriptors"), (3, "bip32derivs"), (4, "finalize")),
    "disconnectnode": ((1, "nodeid"),),
    "dumptxoutset": ((2, "options"), (2, "rollback")),
    "echojson": (
        (0, "arg0"),
        (1, "arg1"),
        (2, "arg2"),
        (3, "arg3"),
        (4, "arg4"),
        (5, "arg5"),
        (6, "arg6"),
        (7, "arg7"),
        (8, "arg8"),
        (9, "arg9"),
    ),
    "estimaterawfee": ((0, "conf_target"), (1, "threshold")),
    "estimatesmartfee": ((0, "conf_target"), (2, "options")),
    "finalizepsbt": ((1, "extract"),),
    "fundrawtransaction": ((1, "options"), (2, "iswitness")),
    "generateblock": ((1, "transactions"), (2, "submit")),
    "generatetoaddress": ((0, "nblocks"), (2, "maxtries")),
    "generatetodescriptor": ((0, "num_blocks"), (2, "maxtries")),
    "getbalance": ((1, "minconf"), (2, "include_watchonly"), (3, "avoid_reuse")),
    "getblock": ((1, "verbosity"), (1, "verbose")),
    "getblockfrompeer": ((1, "peer_id"),),
    "getblockhash": ((0, "height"),),
    "getblockheader": ((1, "verbose"),),
    "getblockstats": ((0, "hash_or_height"), (1, "stats")),
    "getblocktemplate": ((0, "template_request"),),
    "getchaintxstats": ((0, "nblocks"),),
    "getdescriptoractivity": ((0, "blockhashes"), (1, "scanobjects"), (2, "include_mempool")),
    "gethdkeys": ((0, "options"),),
    "getmempoolancestors": ((1, "verbose"),),
    "getmempooldescendants": ((1, "verbose"),),
    "getnetworkhashps": ((0, "nblocks"), (1, "height")),
    "getnodeaddresses": ((0, "count"),),
    "getorphantxs": ((0, "verbosity"), (0, "verbose")),
    "getrawmempool": ((0, "verbose"), (1, "mempool_sequence")),
    "getrawtransaction": ((1, "verbosity"), (1, "verbose")),
    "getreceivedbyaddress": ((1, "minconf"), (2, "include_immature_coinbase")),
    "getreceivedbylabel": ((1, "minconf"), (2, "include_immature_coinbase")),
    "gettransaction": ((1, "include_watchonly"), (2, "verbose")),
    "gettxout": ((1, "n"), (2, "include_mempool")),
    "gettxoutproof": ((0, "txids"),),
    "gettxoutsetinfo": ((1, "hash_or_height"), (2, "use_index")),
    "gettxspendingprevout": ((0, "outputs"), (1, "options")),
    "importdescriptors": ((0, "requests"),),
    "importmempool": (
        (1, "options"),
        (1, "use_current_time"),
        (1, "apply_fee_delta_priority"),
        (1, "apply_unbroadcast_set"),
    ),
    "joinpsbts": ((0, "txs"),),
    "keypoolrefill": ((0, "newsize"),),
    "listdescriptors": ((0, "private"),),
    "listreceivedbyaddress": (
        (0, "minconf"),
        (1, "include_empty"),
        (2, "include_watchonly"),
        (4, "include_immature_coinbase"),
    ),
    "listreceivedbylabel": (
        (0, "minconf"),
        (1, "include_empty"),
        (2, "include_watchonly"),
        (3, "include_immature_coinbase"),
    ),
    "listsinceblock": (
        (1, "target_confirmations"),
        (2, "include_watchonly"),
        (3, "include_removed"),
        (4, "include_change"),
    ),
    "listtransactions": ((1, "count"), (2, "skip"), (3, "include_watchonly")),
    "listunspent": (
        (0, "minconf"),
        (1, "maxconf"),
        (2, "addresses"),
        (3, "include_unsafe"),
        (4, "query_options"),
    ),
    "loadwallet": ((1, "load_on_startup"),),
    "lockunspent": ((0, "unlock"), (1, "transactions"), (2, "persistent")),
    "logging": ((0, "include"), (1, "exclude")),
    "mockscheduler": ((0, "delta_time"),),
    "prioritisetransaction": ((1, "dummy"), (2, "fee_delta")),
    "pruneblockchain": ((0, "height"),),
    "psbtbumpfee": ((1, "options"), (2, "psbt_version")),
    "rescanblockchain": ((0, "start_height"), (1, "stop_height")),
    "restorewallet": ((2, "load_on_startup"),),
    "scanblocks": ((1, "scanobjects"), (2, "start_height"), (3, "stop_height"), (5, "options")),
    "scantxoutset": ((1, "scanobjects"),),
    "send": (
        (0, "outputs"),
        (1, "conf_target"),
        (2, "estimate_mode"),
        (3, "fee_rate"),
        (4, "options"),
    ),
    "sendall": ((0, "recipients"), (1, "conf_target"), (3, "fee_rate"), (4, "options")),
    "sendmany": (
        (1, "amounts"),
        (2, "minconf"),
        (4, "subtractfeefrom"),
        (5, "replaceable"),
        (6, "conf_target"),
        (8, "fee_rate"),
        (9, "verbose"),
    ),
    "sendmsgtopeer": ((0, "peer_id"),),
    "sendrawtransaction": ((1, "maxfeerate"), (2, "maxburnamount")),
    "sendtoaddress": (
        (1, "amount"),
        (4, "subtractfeefromamount"),
        (5, "replaceable"),
        (6, "conf_target"),
        (8, "avoid_reuse"),
        (9, "fee_rate"),
        (10, "verbose"),
    ),
    "setban": ((2, "bantime"), (3, "absolute")),
    "setmocktime": ((0, "timestamp"),),
    "setnetworkactive": ((0, "state"),),
    "settxfee": ((0, "amount"),),
    "setwalletflag": ((1, "value"),),
    "signrawtransactionwithkey": ((1, "privkeys"), (2, "prevtxs")),
    "signrawtransactionwithwallet": ((1, "prevtxs"),),
    "simulaterawtransaction": ((0, "rawtxs"), (1, "options")),
    "stop": ((0, "wait"),),
    "submitpackage": ((0, "package"), (1, "maxfeerate"), (2, "maxburnamount")),
    "testmempoolaccept": ((0, "rawtxs"), (1, "maxfeerate")),
    "unloadwallet": ((1, "load_on_startup"),),
    "utxoupdatepsbt": ((1, "descriptors"),),
    "verifychain": ((0, "checklevel"), (1, "nblocks")),
    "waitforblock": ((1, "timeout"),),
    "waitforblockheight": ((0, "height"), (1, "timeout")),
    "waitfornewblock": ((0, "timeout"),),
    "walletcreatefundedpsbt": (
        (0, "inputs"),
        (1, "outputs"),
        (2, "locktime"),
        (3, "options"),
        (4, "bip32derivs"),
        (5, "psbt_version"),
    ),
    "walletpassphrase": ((1, "timeout"),),
    "walletprocesspsbt": ((1, "sign"), (3, "bip32derivs"), (4, "finalize")),
}
# END GENERATED

# String arguments bitcoin-cli lists (ParamFormat::STRING) because their values may hold '='
# (base64, labels, file names): with -named, "psbt=cHNidP8...==" whose text before the '=' is
# no parameter name of the method is passed by position, as Core's RPCConvertNamedValues.
# Written by hand after Core's table (a method with one of them lists all its strings).
STRING_PARAMS: dict[str, tuple[tuple[int, str], ...]] = {
    "analyzepsbt": ((0, "psbt"),),
    "backupwallet": ((0, "destination"),),
    "createwallet": ((0, "wallet_name"), (3, "passphrase")),
    "decodepsbt": ((0, "psbt"),),
    "descriptorprocesspsbt": ((0, "psbt"), (2, "sighashtype")),
    "dumptxoutset": ((0, "path"), (1, "type")),
    "encryptwallet": ((0, "passphrase"),),
    "finalizepsbt": ((0, "psbt"),),
    "getaddressesbylabel": ((0, "label"),),
    "getnewaddress": ((0, "label"), (1, "address_type")),
    "getreceivedbylabel": ((0, "label"),),
    "importmempool": ((0, "filepath"),),
    "listsinceblock": ((0, "blockhash"), (5, "label")),
    "listtransactions": ((0, "label"),),
    "loadtxoutset": ((0, "path"),),
    "loadwallet": ((0, "filename"),),
    "restorewallet": ((0, "wallet_name"), (1, "backup_file")),
    "sendmany": ((0, "dummy"), (3, "comment"), (7, "estimate_mode")),
    "sendtoaddress": ((0, "address"), (2, "comment"), (3, "comment_to"), (7, "estimate_mode")),
    "setlabel": ((1, "label"),),
    "signmessage": ((1, "message"),),
    "signmessagewithprivkey": ((1, "message"),),
    "unloadwallet": ((0, "wallet_name"),),
    "utxoupdatepsbt": ((0, "psbt"),),
    "verifymessage": ((1, "signature"), (2, "message")),
    "walletpassphrase": ((0, "passphrase"),),
    "walletpassphrasechange": ((0, "oldpassphrase"), (1, "newpassphrase")),
    "walletprocesspsbt": ((0, "psbt"), (2, "sighashtype")),
}

_BEGIN = "# BEGIN GENERATED"
_END = "# END GENERATED"


def convert_position(method: str, idx: int) -> bool:
    """Whether positional argument `idx` (0-based) of `method` is parsed as JSON."""
    return any(i == idx for i, _ in CONVERT_PARAMS.get(method, ()))


def convert_name(method: str, name: str) -> bool:
    """Whether the named argument `name` of `method` is parsed as JSON."""
    return any(n == name for _, n in CONVERT_PARAMS.get(method, ()))


def string_position(method: str, idx: int) -> bool:
    """Whether positional argument `idx` of `method` is a listed string (STRING_PARAMS)."""
    return any(i == idx for i, _ in STRING_PARAMS.get(method, ()))


def known_name(method: str, name: str) -> bool:
    """Whether bitcoin-cli knows `name` as a parameter of `method` (JSON or listed string)."""
    return convert_name(method, name) or any(n == name for _, n in
                                              STRING_PARAMS.get(method, ()))


def table_positions(table: dict | None = None) -> dict[str, list[int]]:
    """The table in the shape of node.rpc.registry.json_arg_positions()."""
    table = CONVERT_PARAMS if table is None else table
    return {m: [i for i, _ in entries] for m, entries in table.items()}


def table_names(table: dict | None = None) -> dict[str, list[str]]:
    """The table in the shape of node.rpc.registry.json_arg_names()."""
    table = CONVERT_PARAMS if table is None else table
    return {m: [n for _, n in entries] for m, entries in table.items()}


def from_registry() -> dict[str, tuple[tuple[int, str], ...]]:
    """The table as the registry declares it, with the wallet's methods (wallet.rpc, which
    minibtcd mounts) beside the node's (imports every RPC method: slow, not for the CLI)."""
    import node.rpc.methods  # noqa: F401  (registers every method)
    from node.rpc.registry import json_arg_names, json_arg_positions
    from wallet.rpc import json_arg_table

    positions, names = json_arg_positions(), json_arg_names()
    if positions.keys() != names.keys():
        raise RuntimeError("registry: json_arg_positions() and json_arg_names() disagree on "
                           f"methods: {sorted(positions.keys() ^ names.keys())}")
    out: dict[str, tuple[tuple[int, str], ...]] = {}
    for method in sorted(positions):
        pos, nam = positions[method], names[method]
        if len(pos) != len(nam):
            raise RuntimeError(f"registry: {method}: positions {pos} vs names {nam}")
        out[method] = tuple(zip(pos, nam, strict=True))
    for method, entries in json_arg_table().items():
        if method in out:
            if out[method] == entries:  # the wallet's own server keeps a copy of a node method
                continue
            raise RuntimeError(f"{method} is both a node and a wallet method")
        out[method] = entries
    return dict(sorted(out.items()))


def render(table: dict[str, tuple[tuple[int, str], ...]]) -> str:
    """The generated block of this file (between and including the markers)."""
    lines = [f"{_BEGIN} (python -m node.rpc.cli_params --write)",
             "CONVERT_PARAMS: dict[str, tuple[tuple[int, str], ...]] = {"]
    for method in sorted(table):
        entries = table[method]
        inner = ", ".join(f"({i}, {n!r})".replace("'", '"') for i, n in entries)
        if len(entries) == 1:
            inner += ","
        line = f'    "{method}": ({inner}),'
        if len(line) > 100:  # keep ruff's line length: one entry per line
            parts = [f'    "{method}": (']
            parts += [f'        ({i}, "{n}"),' for i, n in entries]
            parts.append("    ),")
            lines.extend(parts)
        else:
            lines.append(line)
    lines += ["}", _END]
    return "\n".join(lines)


def rewrite(path: str | None = None) -> bool:
    """Rewrite the generated block of this file from the registry; True if it changed."""
    from pathlib import Path

    p = Path(path or __file__)
    text = p.read_text()
    start = text.index(_BEGIN)
    end = text.index(_END) + len(_END)
    new = text[:start] + render(from_registry()) + text[end:]
    if new == text:
        return False
    p.write_text(new)
    return True


def main(argv: list[str] | None = None) -> int:
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args == ["--write"]:
        changed = rewrite()
        print("node/rpc/cli_params.py: " + ("updated" if changed else "already up to date"))
        return 0
    if args in ([], ["--check"]):
        current = render(CONVERT_PARAMS)
        wanted = render(from_registry())
        if current == wanted:
            print("node/rpc/cli_params.py is up to date")
            return 0
        import difflib

        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(True), wanted.splitlines(True), "table", "registry"))
        print("\nnode/rpc/cli_params.py is stale: run python -m node.rpc.cli_params --write")
        return 1
    print("usage: python -m node.rpc.cli_params [--check | --write]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
