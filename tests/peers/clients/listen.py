"""Lists tools, then waits for server notifications on the same session.

    listen.py URL [--headers JSON] [--timeout SECS] [--subscribe URI]...

Prints JSON lines: {"event": "listed", "tools": [...]} once listed (and
subscribed), one {"event": "notification", "method": ..., "params": ...} per
notification, and after the first notifications/tools/list_changed an
immediate re-list {"event": "relisted", "tools": [...]}, then exits 0.
With --subscribe it exits after the first notifications/resources/updated
instead. {"event": "timeout"} and exit 2 if nothing came in time.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from mcp_probe_lib import dump, emit, error_json, open_session, parse_json_arg


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--headers", default="{}")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--subscribe", action="append", default=[])
    args = parser.parse_args()
    headers = parse_json_arg(args.headers, "--headers")
    got: anyio.abc.ObjectSendStream
    got, seen = anyio.create_memory_object_stream(100)

    async def on_message(message) -> None:
        if isinstance(message, Exception):
            emit({"event": "transport_error", "error": error_json(message)})
            return
        note = dump(message)
        emit({"event": "notification", "method": note.get("method"), "params": note.get("params")})
        await got.send(note.get("method"))

    want = "notifications/resources/updated" if args.subscribe else "notifications/tools/list_changed"
    try:
        async with open_session(args.url, None, headers, message_handler=on_message) as session:
            await session.initialize()
            tools = await session.list_tools()
            for uri in args.subscribe:
                await session.subscribe_resource(uri)
            emit({"event": "listed", "tools": dump(list(tools.tools))})
            with anyio.move_on_after(args.timeout):
                async for method in seen:
                    if method != want:
                        continue
                    if not args.subscribe:
                        tools = await session.list_tools()
                        emit({"event": "relisted", "tools": dump(list(tools.tools))})
                    return 0
            emit({"event": "timeout"})
            return 2
    except Exception as exc:  # noqa: BLE001 - reported as JSON
        emit({"event": "fatal", "error": error_json(exc)})
        return 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
