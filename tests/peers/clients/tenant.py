"""One tenant's MCP session that records every server-to-client message.

Usage: tenant.py URL --headers JSON [--call TOOL --args JSON] [--answer TEXT]
                 [--until-file PATH]

Sets the log level to debug, answers elicitation with {"password": ANSWER}
and sampling with ANSWER, and records what it received. Prints
{"event": "ready"} once initialized, then, after its call (if any) and once
PATH exists (if given), one JSON object: {"result", "logs", "elicitations",
"samplings"}.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import anyio
from mcp import types

from mcp_probe_lib import dump, emit, error_json, open_session, parse_json_arg


async def main_async(args: argparse.Namespace) -> int:
    seen: dict[str, list[Any]] = {"logs": [], "elicitations": [], "samplings": []}

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        seen["logs"].append(dump(params))

    async def on_elicit(_context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen["elicitations"].append(dump(params))
        return types.ElicitResult(action="accept", content={"password": args.answer})

    async def on_sample(_context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        seen["samplings"].append(dump(params))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=args.answer),
            model="test-model",
        )

    headers = parse_json_arg(args.headers, "--headers")
    callbacks = {"logging_callback": on_log, "elicitation_callback": on_elicit, "sampling_callback": on_sample}
    async with open_session(args.url, None, headers, 60.0, callbacks=callbacks) as session:
        await session.initialize()
        await session.set_logging_level("debug")
        emit({"event": "ready"})
        result: Any = None
        if args.call:
            try:
                result = dump(await session.call_tool(args.call, parse_json_arg(args.args, "--args")))
            except Exception as exc:  # noqa: BLE001
                result = {"error": error_json(exc)}
        while args.until_file and not os.path.exists(args.until_file):
            await anyio.sleep(0.05)
        emit({"result": result, **seen})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--headers", default="{}")
    parser.add_argument("--call")
    parser.add_argument("--args", default="{}")
    parser.add_argument("--answer", default="")
    parser.add_argument("--until-file")
    return anyio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
