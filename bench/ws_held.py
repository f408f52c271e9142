"""python `websockets` holding chunk streams, as a peer in chunkstream-bench's compression
scenario: what its defaults cost per held WebSocket, compressed or not.

It serves chunkstream's WebSocket stream: `/stream/ws?count=N&interval_ms=M&start=S` sends
one text message per chunk, `{"index":i,"text":"Data Chunk i"}`, on absolute deadlines, then
closes with 1000. Compression is the library's default (`compression="deflate"`): a client
offering permessage-deflate gets server_max_window_bits=12, memLevel 5, and
client_max_window_bits=12 when it offers that parameter. `--no-compression` declines it.

Keep-alive pings are off (`ping_interval=None`): the bench's raw client does not answer
them, and a ping changes nothing in what a connection holds.

Usage: python ws_held.py HOST:PORT [--no-compression]
"""

import asyncio
import json
import sys
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve


def param(query, name, default):
    try:
        return int(query.get(name, [default])[0])
    except ValueError:
        return default


async def stream(ws):
    query = parse_qs(urlsplit(ws.request.path).query)
    count = param(query, "count", 10)
    start = param(query, "start", 0)
    interval = param(query, "interval_ms", 0) / 1000
    loop = asyncio.get_running_loop()
    began = loop.time()
    for index in range(start, count):
        if interval and index > start:
            await asyncio.sleep(max(0.0, began + (index - start) * interval - loop.time()))
        message = {"index": index, "text": f"Data Chunk {index}"}
        await ws.send(json.dumps(message, separators=(",", ":")))
    await ws.close(1000, "done")


async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    compression = None if "--no-compression" in sys.argv[2:] else "deflate"
    async with serve(stream, host, int(port), compression=compression, ping_interval=None):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main())
