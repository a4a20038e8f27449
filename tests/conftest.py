import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def load_json(name: str):
    return json.loads((DATA / name).read_text())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
