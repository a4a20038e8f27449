"""RPC memory under big requests (issue 18 #7): a node's RSS before, at its peak and after a
burst of decodescript calls whose replies would pass the reply bound (error -7), and of
calls just under it.

    .venv/bin/python scripts/bench/rpc_memory.py [--mb 12] [--parallel 3]

Prints absolute figures and ratios: peak growth per MB of request body, RSS kept after the
burst per MB of request body, and the time per call against what this machine takes to
parse the same body and build the same asm in-process (the floor for the work asked)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consensus.script.standard import script_to_asm  # noqa: E402
from tests.functional.framework import NodeProcess  # noqa: E402


def status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) // 1024
    raise KeyError(key)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=12, help="script size of each call (MB)")
    ap.add_argument("--parallel", type=int, default=3)
    args = ap.parse_args()
    script = b"\xac" * int(args.mb * (1 << 20))
    body = json.dumps({"method": "decodescript", "params": [script.hex()], "id": 1}).encode()
    t = time.perf_counter()
    json.loads(body)
    local = script_to_asm(script)
    floor = time.perf_counter() - t
    del local
    with tempfile.TemporaryDirectory(prefix="bench-rpcmem-") as tmp, \
            NodeProcess(Path(tmp) / "n") as node:
        pid = node.proc.pid
        start = status(pid, "VmRSS")
        replies: list = []

        def one() -> None:
            replies.append(node.request(None, raw=body))

        t = time.perf_counter()
        threads = [threading.Thread(target=one) for _ in range(args.parallel)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        took = time.perf_counter() - t
        peak = status(pid, "VmHWM")
        time.sleep(2)
        after = status(pid, "VmRSS")
        codes = sorted({(r.get("error") or {}).get("code", "ok") for _, r in replies})
    mb = len(body) / (1 << 20)
    print(f"{args.parallel} x decodescript of {args.mb:g} MB ({mb:.1f} MB bodies): "
          f"answers {codes}, {took:.1f} s")
    print(f"RSS: start {start} MB, peak {peak} MB, after {after} MB")
    print(f"peak growth per MB of body in flight: {(peak - start) / (mb * args.parallel):.1f}")
    print(f"RSS kept per MB of body: {(after - start) / (mb * args.parallel):.2f}")
    print(f"time per call / in-process parse+asm: {took / args.parallel / floor:.1f}x")


if __name__ == "__main__":
    main()
