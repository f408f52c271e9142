"""python `websockets` against chunkstream's permessage-deflate: run by
tests/api/ws_deflate.rs (`python ws_deflate.py PORT`), which starts the server.

Its client offers `permessage-deflate; client_max_window_bits` and compresses every message
it sends. Prints one line per check and exits non-zero if any failed."""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import PerMessageDeflate

URL = f"ws://127.0.0.1:{int(sys.argv[1])}/stream/ws"
ANSWER = "permessage-deflate; client_no_context_takeover"
failed = []


def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + (f" ({detail})" if detail else ""))
    if not ok:
        failed.append(name)


def chunk(index):
    return json.dumps({"index": index, "text": f"Data Chunk {index}"}, separators=(",", ":"))


async def send(ws, action):
    await ws.send(json.dumps({"action": action}, separators=(",", ":")))


async def until_closed(ws):
    """Every message up to the close."""
    messages = []
    try:
        while True:
            messages.append(await ws.recv())
    except ConnectionClosed:
        return messages


async def whole_stream():
    async with connect(URL + "?count=500") as ws:
        answer = ws.response.headers.get("Sec-WebSocket-Extensions")
        check("the server answers the offer", answer == ANSWER, answer)
        agreed = [e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)]
        check("permessage-deflate is in use", len(agreed) == 1, ws.protocol.extensions)
        messages = await until_closed(ws)
        check("500 chunks, in order", messages == [chunk(i) for i in range(500)], len(messages))
        check("then 1000 done", (ws.close_code, ws.close_reason) == (1000, "done"))


async def controlled_stream():
    async with connect(URL + "?count=100000&interval_ms=20") as ws:
        check("the first chunk", await ws.recv() == chunk(0))
        await send(ws, "pause")
        # Messages are handled in order: once this one is answered, the stream is paused.
        await ws.send("?")
        last = 0
        while "error" not in (message := await ws.recv()):
            last = json.loads(message)["index"]
        try:
            message = await asyncio.wait_for(ws.recv(), 0.3)
            check("nothing while paused", False, message)
        except asyncio.TimeoutError:
            check("nothing while paused", True)
        await send(ws, "resume")
        resumed = json.loads(await ws.recv())["index"]
        check("resume continues with the next chunk", resumed == last + 1, (last, resumed))
        await send(ws, "stop")
        await until_closed(ws)
        check("stop closes with 1000 stopped", (ws.close_code, ws.close_reason) == (1000, "stopped"))


async def bomb():
    async with connect(URL + "?count=1000&interval_ms=1000") as ws:
        await ws.recv()
        # Deflates to a few hundred bytes; inflated, far past the 4096-byte limit.
        await ws.send("a" * 100_000)
        await until_closed(ws)
        check("a message inflating past 4 KiB closes with 1009", ws.close_code == 1009, ws.close_code)


async def main():
    await whole_stream()
    await controlled_stream()
    await bomb()


asyncio.run(asyncio.wait_for(main(), 30))
sys.exit(1 if failed else 0)
