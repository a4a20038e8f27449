"""minibtc-wallet: the wallet from the command line (typer).

Two ways to reach a wallet, with the same commands:
- directly (the default): the CLI opens the wallet file in the wallets directory itself and
  follows the node over its JSON-RPC (--node, with the node's cookie or --rpc-user/password);
- through a wallet server (--server URL): a running `minibtc-wallet serve`, or minibtcd with
  its wallets mounted; the CLI then only sends JSON-RPC calls. `unlock` needs this mode: an
  unlocked wallet stays unlocked only in the process holding it.

Each command is one of Core's wallet RPCs (create: createwallet, send: sendtoaddress, ...).
Output is for people by default; --json prints the RPC result as it is.
"""

from __future__ import annotations

import base64
import getpass
import http.client
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
import typer.core

from wallet.amounts import btc_text, quantize_btc
from wallet.errors import (
    RPC_WALLET_INSUFFICIENT_FUNDS,
    RPC_WALLET_NOT_FOUND,
    RPC_WALLET_UNLOCK_NEEDED,
    WalletError,
)
from wallet.jsonrpc import dumps, loads

# Help as plain text, options with named values (--fee-rate SAT/VB), and no bare type labels
# after the arguments (typer writes "<str>" beside each: the argument's help says what it is).
typer.core.TyperArgument.display_type = lambda self, ctx: ""  # type: ignore[method-assign]
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="minibtc's HD wallet: keys, addresses, balance, sending, PSBTs. "
                       "Options go before or after the command.")
psbt_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Partially signed transactions (BIP174).")
app.add_typer(psbt_app, name="psbt")

DEFAULT_DATADIR = "~/.minibtc"
RPC_PORTS = {"regtest": 18443, "main": 8332}
DEFAULT_WALLET = "default"


class CLIError(Exception):
    pass


# -- reaching a wallet -----------------------------------------------------------------------


@dataclass
class Options:
    chain: str
    datadir: Path
    wallets_dir: Path
    node: str
    rpc_user: str | None
    rpc_password: str | None
    rpc_cookie: Path
    server: str | None
    server_user: str | None
    server_password: str | None
    server_cookies: list[Path]  # --server-cookie, else the wallet server's, then the node's
    wallet: str
    json: bool

    def params(self):  # noqa: ANN201
        from consensus.params import get_params

        return get_params(self.chain)


class Direct:
    """Wallets opened in this process, following the node over JSON-RPC."""

    def __init__(self, o: Options) -> None:
        from wallet.nodeclient import NodeClient
        from wallet.service import WalletManager

        node = NodeClient(o.node, o.rpc_user, o.rpc_password,
                          None if o.rpc_password else o.rpc_cookie)
        self.manager = WalletManager(o.wallets_dir, o.params(), node)
        self.o = o

    def call(self, method: str, *params: Any, wallet: bool = True) -> Any:
        name = self.o.wallet if wallet else None
        if wallet and name not in self.manager.wallets:
            self.manager.load(name)
        return self.manager.call(name, method, list(params))

    def close(self) -> None:
        self.manager.close()


class Remote:
    """A wallet server (minibtc-wallet serve, or minibtcd): JSON-RPC to /wallet/<name>."""

    def __init__(self, o: Options) -> None:
        parts = urlsplit(o.server if "://" in (o.server or "") else f"http://{o.server}")
        self.url = f"http://{parts.hostname}:{parts.port or 80}"
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.o = o

    def _auth(self) -> str:
        if self.o.server_password is not None:
            cred = f"{self.o.server_user or ''}:{self.o.server_password}"
        else:
            for path in self.o.server_cookies:
                try:
                    cred = path.read_text().strip()
                    break
                except OSError:
                    continue
            else:
                found = _local_server_cookie(self.host, self.port)
                if found is None:
                    tried = ", ".join(str(p) for p in self.o.server_cookies)
                    raise CLIError(f"no cookie for the server at {self.url} (tried {tried}); "
                                   "give --datadir (the node's), --server-cookie or "
                                   "--server-user/--server-password")
                cred = found
        return "Basic " + base64.b64encode(cred.encode()).decode()

    def call(self, method: str, *params: Any, wallet: bool = True) -> Any:
        path = f"/wallet/{self.o.wallet}" if wallet else "/"
        body = dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=900)
        try:
            conn.request("POST", path, body.encode(), {"Authorization": self._auth(),
                                                       "Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except OSError as err:
            raise CLIError(f"Could not reach the wallet server at {self.url}: "
                           f"{err.strerror or err}") from None
        finally:
            conn.close()
        if resp.status == 401:
            raise CLIError(f"the wallet server at {self.url} refused the credentials")
        try:
            reply = loads(data)
        except ValueError:
            raise CLIError(f"HTTP {resp.status} from {self.url}: not a JSON-RPC reply") from None
        if reply.get("error"):
            raise WalletError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]

    def close(self) -> None:
        pass


def _listening_pid(port: int) -> int | None:
    """The local process listening on TCP `port` (Linux /proc; None elsewhere, or when it
    is someone else's process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{f[9]}]")
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def _local_server_cookie(host: str, port: int) -> str | None:
    """The cookie of a wallet server on this machine, found from the process serving the
    port: minibtcd's -datadir (its chain's .cookie), or `minibtc-wallet serve`'s wallets
    directory."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    pid = _listening_pid(port)
    if pid is None:
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    opts: dict[str, str] = {}
    for k, a in enumerate(args):
        name, eq, value = a.lstrip("-").partition("=")
        if eq:
            opts.setdefault(name, value)
        elif a.startswith("--") and k + 1 < len(args):
            opts.setdefault(name, args[k + 1])
    chain = ("regtest" if "regtest" in opts or "-regtest" in args else
             opts.get("chain", "main"))
    base = cwd / Path(opts.get("datadir", "~/.minibtc")).expanduser()
    chain_dir = base if chain == "main" else base / chain
    candidates = [chain_dir / ".cookie"]
    if any(a.endswith(("wallet.cli", "minibtc-wallet")) for a in args) and "serve" in args:
        wdir = opts.get("wallets-dir")
        candidates.insert(0, (cwd / Path(wdir).expanduser()) if wdir
                          else chain_dir / "wallets")
        candidates[0] = candidates[0] / ".cookie"
    for c in candidates:
        try:
            return c.read_text().strip()
        except OSError:
            continue
    return None


def _client(ctx: typer.Context) -> Direct | Remote:
    o: Options = ctx.obj
    return Remote(o) if o.server else Direct(o)


def _run(ctx: typer.Context, fn, human) -> None:  # noqa: ANN001
    """Run fn(client) and print its result (human(result) unless --json)."""
    o: Options = ctx.obj
    client = None
    try:
        client = _client(ctx)
        result = fn(client)
    except WalletError as err:
        hint = ""
        if err.code == RPC_WALLET_UNLOCK_NEEDED:
            err.message = "the wallet is locked"
            hint = (": give --passphrase (asked for on a terminal), or `unlock` it on a "
                    "wallet server")
        elif err.code == RPC_WALLET_INSUFFICIENT_FUNDS and client is not None:
            hint = _waiting_funds(client)
        elif err.code == RPC_WALLET_NOT_FOUND and not o.server:
            hint = f" (wallets directory: {o.wallets_dir})"
        elif "in use by another process" in err.message and not o.server:
            hint = (" (it is mounted in a running minibtcd or wallet server: add --server "
                    f"{o.node})")
        _fail(_cli_words(err.message) + hint, err.code, o.json)
    except CLIError as err:
        _fail(str(err), -1, o.json)
    finally:
        if client is not None:
            client.close()
    if o.json:
        typer.echo(dumps(result, indent=2))
    else:
        text = human(result)
        if text:
            typer.echo(text)


# Core's RPC names in its messages, as this CLI's commands
_COMMANDS = {"walletpassphrase": "unlock", "walletlock": "lock", "backupwallet": "backup",
             "encryptwallet": "encrypt", "bumpfee": "bumpfee", "rescanblockchain": "rescan",
             "loadwallet": "load", "unloadwallet": "unload", "createwallet": "create"}


def _cli_words(message: str) -> str:
    """A message from the wallet, for this CLI: no "Error: " (ours says error: already),
    its command names instead of the RPC methods'."""
    message = re.sub(r"^(Error: )+", "", message)
    for rpc, command in _COMMANDS.items():
        message = re.sub(rf"\b{rpc}\b( RPC)?", f"`{command}`" if rpc != command else rpc,
                         message)
    return message


def _waiting_funds(client: Direct | Remote) -> str:
    """What the wallet holds that is not spendable yet (for an insufficient-funds error)."""
    try:
        mine = client.call("getbalances")["mine"]
    except (WalletError, CLIError, OSError):
        return ""
    parts = []
    if Decimal(str(mine["untrusted_pending"])) > 0:
        parts.append(f"{btc_text(mine['untrusted_pending'])} BTC unconfirmed (spendable once "
                     "confirmed)")
    if Decimal(str(mine["immature"])) > 0:
        parts.append(f"{btc_text(mine['immature'])} BTC immature (coinbase, spendable after 100 "
                     "confirmations)")
    return "; the wallet also has " + " and ".join(parts) if parts else ""


def _fail(message: str, code: int, as_json: bool) -> None:
    if as_json:
        typer.echo(dumps({"error": {"code": code, "message": message}}), err=True)
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def _unlocked(client: Direct | Remote, passphrase: str | None):
    """Unlock an encrypted, locked wallet for this one command when a passphrase is given,
    and lock it again after (through a wallet server it would otherwise stay spendable by
    any RPC client for the rest of the minute); a wallet unlocked already is left as it
    is."""
    relock = False
    until = client.call("getwalletinfo").get("unlocked_until")
    if until == 0:  # encrypted and locked
        if not passphrase and sys.stdin.isatty():
            passphrase = getpass.getpass("wallet passphrase: ")  # (not echoed)
        if passphrase:
            client.call("walletpassphrase", passphrase, 60)
            relock = True
    try:
        yield
    finally:
        if relock:
            try:
                client.call("walletlock")
            except (WalletError, CLIError):
                pass


# -- global options --------------------------------------------------------------------------


@app.callback()
def main_options(
    ctx: typer.Context,
    chain: str = typer.Option("regtest", metavar="CHAIN", help="regtest or main"),
    datadir: str = typer.Option(DEFAULT_DATADIR, metavar="DIR", help="the node's data directory"),
    wallets_dir: Path | None = typer.Option(None, metavar="DIR",  # noqa: B008
                                            help="where wallets live "
                                            "(default: DATADIR/CHAIN/wallets, as minibtcd)"),
    node: str | None = typer.Option(None, metavar="URL", help="the node's JSON-RPC URL "
                                    "(default: http://127.0.0.1:18443 on regtest)"),
    rpc_user: str | None = typer.Option(None, metavar="USER", help="node RPC user"),
    rpc_password: str | None = typer.Option(None, metavar="PASSWORD", help="node RPC password"),
    rpc_cookie: Path | None = typer.Option(None, metavar="FILE",  # noqa: B008
                                           help="node cookie file "
                                           "(default: DATADIR/CHAIN/.cookie)"),
    server: str | None = typer.Option(None, metavar="URL",
                                      help="use a running wallet server at this URL "
                                      "(minibtc-wallet serve, or minibtcd)"),
    server_user: str | None = typer.Option(None, metavar="USER"),
    server_password: str | None = typer.Option(None, metavar="PASSWORD"),
    server_cookie: Path | None = typer.Option(  # noqa: B008
        None, help="the server's cookie (default: the wallets directory's .cookie)"),
    wallet: str = typer.Option(DEFAULT_WALLET, "--wallet", "-w", metavar="NAME",
                                help="wallet name"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (the RPC result)"),
) -> None:
    if chain not in RPC_PORTS:
        typer.echo(f"error: unknown chain '{chain}' (regtest or main)", err=True)
        raise typer.Exit(1)
    base = Path(datadir).expanduser()
    chain_dir = base if chain == "main" else base / chain
    wdir = (wallets_dir or chain_dir / "wallets").expanduser()
    ctx.obj = Options(
        chain, base, wdir, node or f"http://127.0.0.1:{RPC_PORTS[chain]}", rpc_user,
        rpc_password, (rpc_cookie or chain_dir / ".cookie").expanduser(), server, server_user,
        server_password,
        [server_cookie.expanduser()] if server_cookie else [wdir / ".cookie",
                                                            chain_dir / ".cookie"],
        wallet, as_json)


# -- formatting ------------------------------------------------------------------------------


def _plain(v: Any) -> str:
    """A value for people: amounts as Core prints them (0.00000000, never 0E-8)."""
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, (dict, list, bool)) or v is None:
        return dumps(v)
    return str(v)


def _state(t: dict) -> str:
    """A wallet transaction's state in words (listtransactions / gettransaction fields)."""
    confs = t.get("confirmations", 0)
    if t.get("abandoned"):
        return "abandoned"
    if t.get("replaced_by_txid"):
        return f"replaced by {t['replaced_by_txid'][:16]}…"
    if confs < 0:
        return f"conflicted ({-confs} blocks deep)"
    if confs == 0:
        # (Core's "trusted" implies the mempool; without it, whether it is there is unknown)
        return "unconfirmed" + (" (in the mempool)" if t.get("trusted") is True else "")
    if t.get("category") == "immature":
        return f"immature ({confs} confirmation{'s' if confs != 1 else ''})"
    return f"{confs} confirmation{'s' if confs != 1 else ''}"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    if not rows:
        return "(none)"
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def _parse_pairs(pairs: list[str], first: str | None = None) -> dict[str, str]:
    """ADDRESS=AMOUNT pairs (after `first`, the command's own ADDRESS); an address named
    twice is refused rather than one amount silently dropped."""
    out: dict[str, str] = {}
    seen = {first} if first else set()
    for p in pairs:
        addr, sep, amount = p.partition("=")
        if not sep or not addr or not amount:
            raise typer.BadParameter(f"'{p}' is not ADDRESS=AMOUNT")
        if addr in seen:
            raise typer.BadParameter(f"{addr} is named twice: one amount per address")
        seen.add(addr)
        out[addr] = amount
    return out


# -- commands --------------------------------------------------------------------------------


@app.command()
def create(ctx: typer.Context,
           name: str | None = typer.Argument(None, help="wallet name (default: --wallet)"),
           passphrase: str | None = typer.Option(None, metavar="PASSPHRASE",
                                                 help="encrypt the wallet with this"),
           watch_only: bool = typer.Option(False, "--watch-only", help="no private keys")
           ) -> None:
    """Create a wallet with a new mnemonic (shown once: write it down)."""
    o: Options = ctx.obj
    o.wallet = name or o.wallet

    def do(c):  # noqa: ANN001, ANN202
        # (wallet_name, disable_private_keys, blank, passphrase, avoid_reuse, descriptors,
        #  load_on_startup): a node loads it again at every start, as Core does then
        r = c.call("createwallet", o.wallet, watch_only, False, passphrase or "", False, True,
                   True, wallet=False)
        if not watch_only:
            if passphrase:
                c.call("walletpassphrase", passphrase, 60)
            r["mnemonic"] = c.call("getmnemonic")["mnemonic"]
        return r

    _run(ctx, do, lambda r: f"created wallet '{r['name']}'" + (
        f"\nmnemonic (write it down, it restores the wallet):\n  {r['mnemonic']}"
        if "mnemonic" in r else ""))


@app.command()
def restore(ctx: typer.Context,
            name: str | None = typer.Argument(None, help="wallet name (default: --wallet)"),
            mnemonic: str | None = typer.Option(None, metavar="WORDS",
                                                help="the BIP39 words (asked if not "
                                                "given)"),
            mnemonic_passphrase: str = typer.Option("", metavar="PASSPHRASE",
                                                    help="BIP39 passphrase, if one was "
                                                    "used"),
            birthday_height: int | None = typer.Option(None, metavar="HEIGHT",
                                                       help="first block to scan "
                                                       "(default: the genesis block)"),
            passphrase: str | None = typer.Option(None, metavar="PASSPHRASE",
                                                  help="encrypt the wallet with this")
            ) -> None:
    """Restore a wallet from its mnemonic: the same addresses, and its coins after a scan."""
    o: Options = ctx.obj
    o.wallet = name or o.wallet
    words = mnemonic
    if words is None:
        words = (getpass.getpass("mnemonic: ") if sys.stdin.isatty()
                 else sys.stdin.readline())

    def do(c):  # noqa: ANN001, ANN202
        r = c.call("createwallet", o.wallet, False, False, passphrase or "", False, True, True,
                   False, words.strip(), mnemonic_passphrase, birthday_height, wallet=False)
        r["balances"] = c.call("getbalances")
        return r

    _run(ctx, do, lambda r: f"restored wallet '{r['name']}': "
         f"{btc_text(r['balances']['mine']['trusted'])} BTC confirmed, scanned to height "
         f"{r['balances']['lastprocessedblock']['height']}")


@app.command()
def receive(ctx: typer.Context, label: str = typer.Option("", metavar="LABEL",
                                                              help="label for the address"),
            type: str = typer.Option("bech32", "--type", metavar="TYPE",  # noqa: A002
                                     help="bech32 (P2WPKH), bech32m (P2TR), p2sh-segwit, legacy")
            ) -> None:
    """A new address to receive on."""
    _run(ctx, lambda c: c.call("getnewaddress", label, type), str)


@app.command()
def balance(ctx: typer.Context) -> None:
    """Confirmed, unconfirmed and immature (coinbase) balance."""
    def do(c):  # noqa: ANN001, ANN202
        b = c.call("getbalances")
        coins = c.call("listunspent", 0)
        confirmed = sum(Decimal(str(u["amount"])) for u in coins if u["confirmations"] >= 1)
        unconfirmed = sum(Decimal(str(u["amount"])) for u in coins if u["confirmations"] == 0)
        return {"confirmed": quantize_btc(confirmed),
                "unconfirmed": quantize_btc(unconfirmed),
                "immature": b["mine"]["immature"], "trusted": b["mine"]["trusted"],
                "untrusted_pending": b["mine"]["untrusted_pending"],
                "height": b["lastprocessedblock"]["height"]}

    _run(ctx, do, lambda r: "\n".join(
        [f"confirmed    {btc_text(r['confirmed']):>20} BTC",
         f"unconfirmed  {btc_text(r['unconfirmed']):>20} BTC",
         f"immature     {btc_text(r['immature']):>20} BTC",
         f"(at height {r['height']})"]))


@app.command(context_settings={"ignore_unknown_options": True})  # (AMOUNT -1: a clear error)
def send(ctx: typer.Context,
         address: str = typer.Argument(..., metavar="ADDRESS", help="the address to pay"),
         amount: str = typer.Argument(..., metavar="AMOUNT", help="BTC, e.g. 0.5"),
         fee_rate: str | None = typer.Option(None, metavar="SAT/VB",
                                             help="sat/vB (default: the node's "
                                             "estimatesmartfee)"),
         subtract_fee: bool = typer.Option(False, "--subtract-fee",
                                           help="the recipient pays the fee (send-max: "
                                           "the whole balance as AMOUNT)"),
         no_rbf: bool = typer.Option(False, "--no-rbf",
                                     help="do not signal BIP125 replaceability"),
         to: list[str] | None = typer.Option(  # noqa: B008
             None, "--to", metavar="ADDRESS=AMOUNT", help="more recipients"),
         passphrase: str | None = typer.Option(None, metavar="PASSPHRASE",
                                               help="unlock an encrypted wallet")
         ) -> None:
    """Send AMOUNT (BTC) to ADDRESS (and to more recipients with --to)."""
    def do(c):  # noqa: ANN001, ANN202
        with _unlocked(c, passphrase):
            if to:
                amounts = {address: amount, **_parse_pairs(to, address)}
                sub = [address] if subtract_fee else []
                txid = c.call("sendmany", "", amounts, None, None, sub, not no_rbf, None, "unset",
                              fee_rate)
            else:
                txid = c.call("sendtoaddress", address, amount, None, None, subtract_fee,
                              not no_rbf, None, "unset", None, fee_rate)
            return _sent(c, txid)

    _run(ctx, do, _sent_text)


def _sent(c: Direct | Remote, txid: str) -> dict:
    return {"txid": txid, "fee": -Decimal(str(c.call("gettransaction", txid).get("fee", 0)))}


def _sent_text(r: dict) -> str:
    return f"sent: {r['txid']}\nfee:  {btc_text(r['fee'])} BTC"


@app.command()
def sweep(ctx: typer.Context,
          address: str = typer.Argument(..., metavar="ADDRESS", help="the address to pay"),
          fee_rate: str | None = typer.Option(None, metavar="SAT/VB",
                                              help="sat/vB (default: the node's "
                                              "estimatesmartfee)"),
          passphrase: str | None = typer.Option(None, metavar="PASSPHRASE",
                                                help="unlock an encrypted wallet")
          ) -> None:
    """Send the whole spendable balance to ADDRESS, leaving no change (sendall)."""
    def do(c):  # noqa: ANN001, ANN202
        with _unlocked(c, passphrase):
            return _sent(c, c.call("sendall", [address], None, None, fee_rate)["txid"])

    _run(ctx, do, _sent_text)


@app.command()
def history(ctx: typer.Context, count: int = typer.Option(20, metavar="N",
                                                          help="how many entries")) -> None:
    """Transactions, oldest first: amount, fee, state in words (confirmations, unconfirmed,
    replaced, abandoned, conflicted)."""
    def human(rows: list[dict]) -> str:
        return _table([[r["category"], btc_text(r["amount"]),
                        btc_text(-Decimal(str(r["fee"]))) if "fee" in r else "", _state(r),
                        r.get("address", ""), r["txid"]] for r in rows],
                      ["category", "amount", "fee", "state", "address", "txid"])

    _run(ctx, lambda c: c.call("listtransactions", "*", count), human)


@app.command()
def show(ctx: typer.Context,
         txid: str = typer.Argument(..., metavar="TXID", help="a transaction of the wallet")
         ) -> None:
    """One transaction: state, amount, fee, block, what it pays and replaces."""
    def human(t: dict) -> str:
        lines = [f"txid:     {t['txid']}", f"state:    {_state(t)}",
                 f"amount:   {btc_text(t['amount'])} BTC"]
        if "fee" in t:
            lines.append(f"fee:      {btc_text(-Decimal(str(t['fee'])))} BTC")
        if "blockhash" in t:
            lines.append(f"block:    {t['blockheight']} {t['blockhash']}")
        lines.append(f"time:     {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t['time']))}")
        for key, name in (("replaced_by_txid", "replaced by"), ("replaces_txid", "replaces")):
            if key in t:
                lines.append(f"{name + ':':<10}{t[key]}")
        if t.get("walletconflicts"):
            lines.append("conflicts: " + ", ".join(t["walletconflicts"]))
        lines.append(f"replaceable (BIP125): {t.get('bip125-replaceable', 'unknown')}")
        for d in t.get("details", []):
            lines.append(f"  {d['category']:<8} {btc_text(d['amount']):>16} BTC  "
                         f"{d.get('address', '')}" + (f"  ({d['label']})" if d.get("label")
                                                     else ""))
        return "\n".join(lines)

    _run(ctx, lambda c: c.call("gettransaction", txid), human)


@app.command()
def utxos(ctx: typer.Context) -> None:
    """Unspent coins."""
    def human(rows: list[dict]) -> str:
        return _table([[f"{r['txid']}:{r['vout']}", btc_text(r["amount"]), str(r["confirmations"]),
                        r.get("address", "")] for r in rows],
                      ["outpoint", "amount", "confs", "address"])

    _run(ctx, lambda c: c.call("listunspent", 0), human)


@app.command()
def bumpfee(ctx: typer.Context,
            txid: str = typer.Argument(..., metavar="TXID", help="the transaction to replace"),
            fee_rate: str | None = typer.Option(None, metavar="SAT/VB",
                                                help="new fee rate, sat/vB"),
            passphrase: str | None = typer.Option(None, metavar="PASSPHRASE",
                                                  help="unlock an encrypted wallet")
            ) -> None:
    """Replace an unconfirmed transaction by one paying a higher fee (BIP125)."""
    def do(c):  # noqa: ANN001, ANN202
        with _unlocked(c, passphrase):
            return c.call("bumpfee", txid, {"fee_rate": fee_rate} if fee_rate else None)

    _run(ctx, do, lambda r: f"replaced by {r['txid']}\nfee {btc_text(r['origfee'])} -> "
         f"{btc_text(r['fee'])} BTC")


@app.command()
def backup(ctx: typer.Context,
           destination: Path = typer.Argument(..., metavar="FILE",  # noqa: B008
                                              help="where the copy goes")) -> None:
    """Copy the wallet file (a consistent snapshot) to DESTINATION."""
    _run(ctx, lambda c: c.call("backupwallet", str(destination.resolve())),
         lambda r: f"backed up to {destination}")


@app.command()
def encrypt(ctx: typer.Context,
            passphrase: str | None = typer.Option(None, metavar="PASSPHRASE",
                                                  help="asked if not given")) -> None:
    """Encrypt the wallet's keys with a passphrase."""
    p = passphrase or _ask_new_passphrase()
    _run(ctx, lambda c: c.call("encryptwallet", p),
         lambda r: "wallet encrypted. Its keys are new: back it up again now (`minibtc-wallet "
                   "backup FILE`); older backups do not hold them. Commands that spend ask "
                   "for the passphrase (or take --passphrase).")


@app.command()
def unlock(ctx: typer.Context,
           passphrase: str | None = typer.Option(None, metavar="PASSPHRASE",
                                                 help="asked if not given"),
           timeout: int = typer.Option(300, metavar="SECONDS",
                                       help="seconds before it locks again")) -> None:
    """Unlock the wallet on a wallet server for TIMEOUT seconds."""
    o: Options = ctx.obj
    if not o.server:
        _fail("unlock lasts only as long as the process holding the wallet: use it with "
              "--server (minibtc-wallet serve, or minibtcd), or give --passphrase to the "
              "command that needs the keys", -1, o.json)
    p = passphrase or getpass.getpass("passphrase: ")
    _run(ctx, lambda c: c.call("walletpassphrase", p, timeout),
         lambda r: f"unlocked for {timeout} s")


@app.command()
def lock(ctx: typer.Context) -> None:
    """Lock the wallet (forget its keys until the next unlock)."""
    _run(ctx, lambda c: c.call("walletlock"), lambda r: "locked")


@app.command()
def mnemonic(ctx: typer.Context,
             passphrase: str | None = typer.Option(None, metavar="PASSPHRASE",
                                                   help="unlock an encrypted wallet")
             ) -> None:
    """Show the wallet's mnemonic."""
    def do(c):  # noqa: ANN001, ANN202
        with _unlocked(c, passphrase):
            return c.call("getmnemonic")

    _run(ctx, do, lambda r: r["mnemonic"])


@app.command()
def info(ctx: typer.Context) -> None:
    """The wallet's state (getwalletinfo)."""
    _run(ctx, lambda c: c.call("getwalletinfo"),
         lambda r: "\n".join(f"{k}: {_plain(v)}" for k, v in r.items()))


@app.command()
def rescan(ctx: typer.Context, start_height: int = typer.Option(0, metavar="HEIGHT"),
           stop_height: int | None = typer.Option(None, metavar="HEIGHT")) -> None:
    """Scan the chain again for the wallet's transactions."""
    _run(ctx, lambda c: c.call("rescanblockchain", start_height, stop_height),
         lambda r: f"rescanned {r['start_height']} to {r['stop_height']}")


@app.command()
def load(ctx: typer.Context,
         name: str | None = typer.Argument(None, help="wallet name (default: --wallet)")
         ) -> None:
    """Load a wallet of the wallets directory; it is loaded at every start from then on."""
    o: Options = ctx.obj
    o.wallet = name or o.wallet
    _run(ctx, lambda c: c.call("loadwallet", o.wallet, True, wallet=False),
         lambda r: f"loaded wallet '{r['name']}'")


@app.command()
def unload(ctx: typer.Context,
           name: str | None = typer.Argument(None, help="wallet name (default: --wallet)")
           ) -> None:
    """Unload a wallet; it is no longer loaded at start."""
    o: Options = ctx.obj
    o.wallet = name or o.wallet
    _run(ctx, lambda c: c.call("unloadwallet", o.wallet, False, wallet=False),
         lambda r: f"unloaded wallet '{o.wallet}'")


@app.command(name="list")
def list_(ctx: typer.Context) -> None:
    """Wallets in the wallets directory (or loaded on the server)."""
    _run(ctx, lambda c: [w["name"] for w in c.call("listwalletdir", wallet=False)["wallets"]],
         lambda r: "\n".join(r) if r else "(no wallets)")


# -- psbt ------------------------------------------------------------------------------------


@psbt_app.command("create")
def psbt_create(ctx: typer.Context, outputs: list[str] = typer.Argument(  # noqa: B008
        ..., help="ADDRESS=AMOUNT ..."),
        fee_rate: str | None = typer.Option(None, metavar="SAT/VB", help="sat/vB")) -> None:
    """Fund a PSBT paying the outputs from this wallet (not signed)."""
    opts = {"fee_rate": fee_rate} if fee_rate else {}
    _run(ctx, lambda c: c.call("walletcreatefundedpsbt", [], _parse_pairs(outputs), None, opts),
         lambda r: f"{r['psbt']}\nfee: {btc_text(r['fee'])} BTC")


@psbt_app.command("sign")
def psbt_sign(ctx: typer.Context, psbt: str,
              finalize: bool = typer.Option(True, help="finalize the inputs signed"),
              passphrase: str | None = typer.Option(None, metavar="PASSPHRASE",
                                                    help="unlock an encrypted wallet")
              ) -> None:
    """Add this wallet's signatures to a PSBT."""
    def do(c):  # noqa: ANN001, ANN202
        with _unlocked(c, passphrase):
            return c.call("walletprocesspsbt", psbt, True, "DEFAULT", True, finalize)

    _run(ctx, do, lambda r: r["psbt"] + ("\ncomplete" if r["complete"] else "\nincomplete"))


@psbt_app.command("finalize")
def psbt_finalize(ctx: typer.Context, psbt: str,
                  broadcast: bool = typer.Option(False, "--broadcast",
                                                 help="send it to the node if complete")
                  ) -> None:
    """Finalize a PSBT; print the transaction hex when complete."""
    def do(c):  # noqa: ANN001, ANN202
        r = c.call("finalizepsbt", psbt, True, wallet=False)
        if broadcast:
            if not r["complete"]:
                raise CLIError("the PSBT is not complete: nothing sent")
            if isinstance(c, Direct):
                r["txid"] = c.manager.node.call("sendrawtransaction", r["hex"])
            else:
                raise CLIError("--broadcast works in direct mode (it uses the node's "
                               "sendrawtransaction)")
        return r

    _run(ctx, do, lambda r: r.get("txid") or r.get("hex") or r["psbt"] + "\nincomplete")


@psbt_app.command("combine")
def psbt_combine(ctx: typer.Context, psbts: list[str]) -> None:
    """Merge PSBTs of the same transaction."""
    _run(ctx, lambda c: c.call("combinepsbt", psbts, wallet=False), str)


@psbt_app.command("decode")
def psbt_decode(ctx: typer.Context, psbt: str) -> None:
    """Decode a PSBT (JSON, as Core's decodepsbt)."""
    _run(ctx, lambda c: c.call("decodepsbt", psbt, wallet=False),
         lambda r: dumps(r, indent=2))


# -- serve -----------------------------------------------------------------------------------


@app.command()
def serve(ctx: typer.Context, host: str = typer.Option("127.0.0.1", metavar="HOST"),
          port: int = typer.Option(18450, metavar="PORT", help="the wallet RPC port"),
          user: str | None = typer.Option(None, metavar="USER",
                                          help="RPC user for clients (with --password)"),
          password: str | None = typer.Option(None, metavar="PASSWORD",
                                              help="otherwise a cookie is written in "
                                              "the wallets directory")) -> None:
    """Serve the wallets directory's wallets over JSON-RPC (Core's wallet methods)."""
    import asyncio
    import logging

    from wallet.nodeclient import NodeClient
    from wallet.server import serve as run_server
    from wallet.service import WalletManager

    o: Options = ctx.obj
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(message)s")
    node = NodeClient(o.node, o.rpc_user, o.rpc_password,
                      None if o.rpc_password else o.rpc_cookie)
    manager = WalletManager(o.wallets_dir, o.params(), node)
    for problem in manager.start():
        typer.echo(f"warning: {problem}", err=True)
    o.wallets_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run_server(manager, host, port, user, password, o.wallets_dir / ".cookie",
                               ready=lambda: typer.echo(f"wallet RPC on http://{host}:{port}/ "
                                                        f"(wallets in {o.wallets_dir})")))
    except OSError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def _ask_new_passphrase() -> str:
    if not sys.stdin.isatty():
        raise typer.BadParameter("give --passphrase (no terminal to ask on)")
    p = getpass.getpass("new passphrase: ")
    if p != getpass.getpass("again: "):
        typer.echo("error: the passphrases differ", err=True)
        raise typer.Exit(1)
    return p


# Options of the whole CLI (app's callback), and whether each takes a value: accepted after
# the command too (`receive -w alice`), moved in front of it before parsing.
_GLOBAL = {"--chain": True, "--datadir": True, "--wallets-dir": True, "--node": True,
           "--rpc-user": True, "--rpc-password": True, "--rpc-cookie": True, "--server": True,
           "--server-user": True, "--server-password": True, "--server-cookie": True,
           "--wallet": True, "-w": True, "--json": False}


def hoist_options(argv: list[str]) -> list[str]:
    """argv with the global options found after the command moved before it (up to a
    `--`, after which everything is an argument)."""
    front: list[str] = []
    rest: list[str] = []
    k = 0
    while k < len(argv):
        a = argv[k]
        if a == "--":
            rest += argv[k:]
            break
        name = a.split("=", 1)[0]
        if name in _GLOBAL:
            takes = _GLOBAL[name] and "=" not in a
            front += argv[k:k + 2] if takes else [a]
            k += 2 if takes else 1
            continue
        rest.append(a)
        k += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    app(args=hoist_options(args), prog_name="minibtc-wallet")


if __name__ == "__main__":
    main()
