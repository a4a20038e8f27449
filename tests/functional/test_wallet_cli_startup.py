"""minibtc-wallet against minibtcd: a wallet it creates (or loads) is loaded again at every
start of the node (load_on_startup, as Core's), one it unloads is not; minibtcd itself
creates none."""

from __future__ import annotations

import subprocess
import sys

from tests.functional.framework import ROOT, NodeProcess, cli_env


def test_created_and_loaded_wallets_come_back_after_a_restart(tmp_path):
    node = NodeProcess(tmp_path / "n")

    def wcli(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "wallet.cli", "--datadir", str(node.datadir),
                            "--server", node.url, *args], cwd=ROOT, env=cli_env(),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    with node:
        assert node.call("listwallets") == []
        assert "created wallet 'alice'" in wcli("create", "alice")
    with node:
        assert node.call("listwallets") == ["alice"]
        assert "unloaded wallet 'alice'" in wcli("unload", "alice")
    with node:
        assert node.call("listwallets") == []
        assert "loaded wallet 'alice'" in wcli("load", "alice")
        assert node.call("listwallets") == ["alice"]
    with node:
        assert node.call("listwallets") == ["alice"]
