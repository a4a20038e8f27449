"""The Esplora server's queue of requests waiting for its workers is bounded: past
max_pending, 503 at once (the queue is not grown without bound), and it serves again when
the workers are free. The server is the real aiohttp one, on a loopback port; its query
layer is a stand-in whose answer waits for the test."""

import asyncio
import threading

import aiohttp

from node.esplora.server import WORKERS, EsploraServer


class _Tip:
    height = 7
    hash = b"\x00" * 32


class SlowQuery:
    def __init__(self) -> None:
        self.go = threading.Event()
        self.started = 0
        self.lock = threading.Lock()

    def tip(self):  # noqa: ANN201
        with self.lock:
            self.started += 1
        self.go.wait(30)
        return _Tip()

    def close(self) -> None:
        pass


def test_full_queue_is_refused() -> None:
    async def main() -> None:
        q = SlowQuery()
        server = EsploraServer(q, [("127.0.0.1", 0)], None, max_pending=3)  # type: ignore[arg-type]
        await server.start()
        host, port = server.bound[0]
        url = f"http://{host}:{port}/blocks/tip/height"
        try:
            async with aiohttp.ClientSession() as s:
                async def get() -> tuple[int, str]:
                    async with s.get(url) as r:
                        return r.status, await r.text()

                held = [asyncio.create_task(get()) for _ in range(WORKERS + 3)]
                for _ in range(3000):  # until all are in: running or waiting
                    if server.in_pool == WORKERS + 3:
                        break
                    await asyncio.sleep(0.01)
                assert server.in_pool == WORKERS + 3
                assert await get() == (503, "Too many requests waiting, try again later")
                q.go.set()
                assert await asyncio.gather(*held) == [(200, "7")] * (WORKERS + 3)
                assert await get() == (200, "7")
        finally:
            q.go.set()
            await server.stop()

    asyncio.run(main())
