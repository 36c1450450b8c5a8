"""Bench helper process: a bare aiohttp handler serving one JSON object (the throughput baseline).

No middlewares, no auth: the object (read from a file) is serialised with orjson per request, as
the gateway does. Prints ``{"url"}``, then serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web


async def main(obj: Any) -> None:
    """Serve ``obj`` at every path until stdin closes."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(obj), content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    sys.stdout.buffer.write(orjson.dumps({"url": f"http://{host}:{port}"}) + b"\n")
    sys.stdout.flush()
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (await reader.readline()).strip() not in (b"", b"quit"):
        pass
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--body", type=Path, required=True, help="file holding the JSON object")
    args = parser.parse_args()
    asyncio.run(main(orjson.loads(args.body.read_bytes())))
