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
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from wallet.errors import RPC_WALLET_NOT_FOUND, RPC_WALLET_UNLOCK_NEEDED, WalletError
from wallet.jsonrpc import dumps, loads

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="minibtc's HD wallet: keys, addresses, balance, sending, PSBTs.")
psbt_app = typer.Typer(no_args_is_help=True, help="Partially signed transactions (BIP174).")
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
                tried = ", ".join(str(p) for p in self.o.server_cookies)
                raise CLIError(f"no cookie for the server at {self.url} (tried {tried}); give "
                               "--server-cookie or --server-user/--server-password")
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
            hint = " (give --passphrase, or unlock it on a wallet server)"
        elif err.code == RPC_WALLET_NOT_FOUND and not o.server:
            hint = f" (wallets directory: {o.wallets_dir})"
        elif "in use by another process" in err.message and not o.server:
            hint = (" (it is mounted in a running minibtcd or wallet server: add --server "
                    f"{o.node})")
        _fail(f"{err.message}{hint}", err.code, o.json)
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
    if passphrase:
        until = client.call("getwalletinfo").get("unlocked_until")
        if until == 0:
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
    chain: str = typer.Option("regtest", help="regtest or main"),
    datadir: str = typer.Option(DEFAULT_DATADIR, help="the node's data directory"),
    wallets_dir: Path | None = typer.Option(None, help="where wallets live "  # noqa: B008
                                            "(default: DATADIR/CHAIN/wallets, as minibtcd)"),
    node: str | None = typer.Option(None, help="the node's JSON-RPC URL "
                                    "(default: http://127.0.0.1:18443 on regtest)"),
    rpc_user: str | None = typer.Option(None, help="node RPC user"),
    rpc_password: str | None = typer.Option(None, help="node RPC password"),
    rpc_cookie: Path | None = typer.Option(None, help="node cookie file "  # noqa: B008
                                           "(default: DATADIR/CHAIN/.cookie)"),
    server: str | None = typer.Option(None, help="use a running wallet server at this URL "
                                      "(minibtc-wallet serve, or minibtcd)"),
    server_user: str | None = typer.Option(None),
    server_password: str | None = typer.Option(None),
    server_cookie: Path | None = typer.Option(  # noqa: B008
        None, help="the server's cookie (default: the wallets directory's .cookie)"),
    wallet: str = typer.Option(DEFAULT_WALLET, "--wallet", "-w", help="wallet name"),
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


def _btc(v: Any) -> str:
    return f"{Decimal(str(v)):.8f}"


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
           passphrase: str | None = typer.Option(None, help="encrypt the wallet with this"),
           watch_only: bool = typer.Option(False, help="no private keys")) -> None:
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
            mnemonic: str | None = typer.Option(None, help="the BIP39 words (asked if not "
                                                "given)"),
            mnemonic_passphrase: str = typer.Option("", help="BIP39 passphrase, if one was "
                                                    "used"),
            birthday_height: int | None = typer.Option(None, help="first block to scan "
                                                       "(default: the genesis block)"),
            passphrase: str | None = typer.Option(None, help="encrypt the wallet with this")
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
         f"{_btc(r['balances']['mine']['trusted'])} BTC confirmed, scanned to height "
         f"{r['balances']['lastprocessedblock']['height']}")


@app.command()
def receive(ctx: typer.Context, label: str = typer.Option("", help="label for the address"),
            type: str = typer.Option("bech32", "--type",  # noqa: A002
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
        return {"confirmed": Decimal(f"{confirmed:.8f}"),
                "unconfirmed": Decimal(f"{unconfirmed:.8f}"),
                "immature": b["mine"]["immature"], "trusted": b["mine"]["trusted"],
                "untrusted_pending": b["mine"]["untrusted_pending"],
                "height": b["lastprocessedblock"]["height"]}

    _run(ctx, do, lambda r: "\n".join(
        [f"confirmed    {_btc(r['confirmed']):>20} BTC",
         f"unconfirmed  {_btc(r['unconfirmed']):>20} BTC",
         f"immature     {_btc(r['immature']):>20} BTC",
         f"(at height {r['height']})"]))


@app.command()
def send(ctx: typer.Context, address: str, amount: str,
         fee_rate: str | None = typer.Option(None, help="sat/vB (default: the node's "
                                             "estimatesmartfee)"),
         subtract_fee: bool = typer.Option(False, help="the recipient pays the fee (send-max: "
                                           "the whole balance as AMOUNT)"),
         no_rbf: bool = typer.Option(False, help="do not signal BIP125 replaceability"),
         to: list[str] | None = typer.Option(  # noqa: B008
             None, "--to", help="more recipients, ADDRESS=AMOUNT"),
         passphrase: str | None = typer.Option(None, help="unlock an encrypted wallet")
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
                              not no_rbf, None, "unset", True, fee_rate)
            return _sent(c, txid)

    _run(ctx, do, _sent_text)


def _sent(c: Direct | Remote, txid: str) -> dict:
    return {"txid": txid, "fee": -Decimal(str(c.call("gettransaction", txid).get("fee", 0)))}


def _sent_text(r: dict) -> str:
    return f"sent: {r['txid']}\nfee:  {_btc(r['fee'])} BTC"


@app.command()
def sweep(ctx: typer.Context, address: str,
          fee_rate: str | None = typer.Option(None, help="sat/vB (default: the node's "
                                              "estimatesmartfee)"),
          passphrase: str | None = typer.Option(None, help="unlock an encrypted wallet")
          ) -> None:
    """Send the whole spendable balance to ADDRESS, leaving no change (sendall)."""
    def do(c):  # noqa: ANN001, ANN202
        with _unlocked(c, passphrase):
            return _sent(c, c.call("sendall", [address], None, None, fee_rate)["txid"])

    _run(ctx, do, _sent_text)


@app.command()
def history(ctx: typer.Context, count: int = typer.Option(20, help="how many entries")) -> None:
    """Transactions, oldest first."""
    def human(rows: list[dict]) -> str:
        return _table([[r["category"], _btc(r["amount"]), str(r["confirmations"]),
                        r.get("address", ""), r["txid"]] for r in rows],
                      ["category", "amount", "confs", "address", "txid"])

    _run(ctx, lambda c: c.call("listtransactions", "*", count), human)


@app.command()
def utxos(ctx: typer.Context) -> None:
    """Unspent coins."""
    def human(rows: list[dict]) -> str:
        return _table([[f"{r['txid']}:{r['vout']}", _btc(r["amount"]), str(r["confirmations"]),
                        r.get("address", "")] for r in rows],
                      ["outpoint", "amount", "confs", "address"])

    _run(ctx, lambda c: c.call("listunspent", 0), human)


@app.command()
def bumpfee(ctx: typer.Context, txid: str,
            fee_rate: str | None = typer.Option(None, help="new fee rate, sat/vB"),
            passphrase: str | None = typer.Option(None, help="unlock an encrypted wallet")
            ) -> None:
    """Replace an unconfirmed transaction by one paying a higher fee (BIP125)."""
    def do(c):  # noqa: ANN001, ANN202
        with _unlocked(c, passphrase):
            return c.call("bumpfee", txid, {"fee_rate": fee_rate} if fee_rate else None)

    _run(ctx, do, lambda r: f"replaced by {r['txid']}\nfee {_btc(r['origfee'])} -> "
         f"{_btc(r['fee'])} BTC")


@app.command()
def backup(ctx: typer.Context, destination: Path) -> None:
    """Copy the wallet file (a consistent snapshot) to DESTINATION."""
    _run(ctx, lambda c: c.call("backupwallet", str(destination.resolve())),
         lambda r: f"backed up to {destination}")


@app.command()
def encrypt(ctx: typer.Context,
            passphrase: str | None = typer.Option(None, help="asked if not given")) -> None:
    """Encrypt the wallet's keys with a passphrase."""
    p = passphrase or _ask_new_passphrase()
    _run(ctx, lambda c: c.call("encryptwallet", p), str)


@app.command()
def unlock(ctx: typer.Context,
           passphrase: str | None = typer.Option(None, help="asked if not given"),
           timeout: int = typer.Option(300, help="seconds before it locks again")) -> None:
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
             passphrase: str | None = typer.Option(None, help="unlock an encrypted wallet")
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
         lambda r: "\n".join(f"{k}: {json.dumps(v) if isinstance(v, dict) else v}"
                             for k, v in r.items()))


@app.command()
def rescan(ctx: typer.Context, start_height: int = typer.Option(0),
           stop_height: int | None = typer.Option(None)) -> None:
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
        fee_rate: str | None = typer.Option(None, help="sat/vB")) -> None:
    """Fund a PSBT paying the outputs from this wallet (not signed)."""
    opts = {"fee_rate": fee_rate} if fee_rate else {}
    _run(ctx, lambda c: c.call("walletcreatefundedpsbt", [], _parse_pairs(outputs), None, opts),
         lambda r: f"{r['psbt']}\nfee: {_btc(r['fee'])} BTC")


@psbt_app.command("sign")
def psbt_sign(ctx: typer.Context, psbt: str,
              finalize: bool = typer.Option(True, help="finalize the inputs signed"),
              passphrase: str | None = typer.Option(None, help="unlock an encrypted wallet")
              ) -> None:
    """Add this wallet's signatures to a PSBT."""
    def do(c):  # noqa: ANN001, ANN202
        with _unlocked(c, passphrase):
            return c.call("walletprocesspsbt", psbt, True, "DEFAULT", True, finalize)

    _run(ctx, do, lambda r: r["psbt"] + ("\ncomplete" if r["complete"] else "\nincomplete"))


@psbt_app.command("finalize")
def psbt_finalize(ctx: typer.Context, psbt: str,
                  broadcast: bool = typer.Option(False, help="send it to the node if complete")
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
def serve(ctx: typer.Context, host: str = typer.Option("127.0.0.1"),
          port: int = typer.Option(18450, help="the wallet RPC port"),
          user: str | None = typer.Option(None, help="RPC user for clients (with --password)"),
          password: str | None = typer.Option(None, help="otherwise a cookie is written in "
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
