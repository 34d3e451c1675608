#!/usr/bin/env python3
"""ws_sink seen by an independent WebSocket implementation: Debian's python3-websockets.

    ws_clients.py PORT [TOKEN]

Prints "subscribed" once its subscription to AAPL is confirmed (the C++ test then publishes
a batch), then one JSON line: the `subscribed` frame, the first `predictions` frame's data,
the `error` frame answering a malformed frame, the close code after a frame over 64 KiB,
and the HTTP status of a connection without the token (when a token is given).
Used by tests/integration/test_ws_sink.cpp.
"""
import asyncio
import json
import sys

import websockets


async def next_of(ws, kind):
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg.get("type") == kind:
            return msg


async def main(port, token):
    uri = f"ws://127.0.0.1:{port}/predictions"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    result = {}
    async with websockets.connect(uri, extra_headers=headers, max_size=None) as ws:
        await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"]}))
        result["subscribed"] = await next_of(ws, "subscribed")
        print("subscribed", flush=True)
        result["predictions"] = (await next_of(ws, "predictions"))["data"]
        await ws.send("{not json")
        result["error"] = await next_of(ws, "error")
        await ws.send("x" * (64 * 1024 + 1))
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            result["close_code"] = closed.code
    if token:
        try:
            async with websockets.connect(uri):
                result["without_token"] = 101
        except websockets.InvalidStatusCode as refused:
            result["without_token"] = refused.status_code
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""))
