import json
import os
from pathlib import Path

import pytest

# Parallel workers (pytest-xdist) pick node ports in ranges of their own: two processes that
# probe the same range can both find a port free before either binds it (regtest.network's
# free_port; the minibtc-net processes the tests start inherit the variable).
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and "MINIBTC_PORT_RANGE" not in os.environ:
    _n = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    _size = 12_000 // _n
    _low = 20_000 + int(_worker[2:]) % _n * _size
    os.environ["MINIBTC_PORT_RANGE"] = f"{_low}-{_low + _size - 1}"

DATA = Path(__file__).parent / "data"


def load_json(name: str):
    return json.loads((DATA / name).read_text())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
