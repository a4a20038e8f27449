"""Fixtures shared by the functional tests."""

from __future__ import annotations

import os
import signal

import pytest

from tests.functional.netutil import daemons_of, net_cli


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "net"
    yield d
    if (d / "network.json").exists():
        net_cli(d, "down", check=False)
    for pid in daemons_of(d):  # nothing may be left behind, even when a test fails
        os.kill(pid, signal.SIGKILL)
