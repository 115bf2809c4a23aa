"""Calls tools that need client input over a stateless 2026-07-28 connection,
letting the SDK drive the multi round-trip (`input_required`) rounds.

    mrtr.py URL TOOL [TOOL ...]

The client declares sampling, elicitation and roots and answers them: its
name is "Alice", its favorite color "blue", its LLM says "Paris", its one
root is file:///work. Prints one JSON object:
{"results": {TOOL: {"content": [...]} | {"error": ...}}, "asked": [methods the callbacks served]}.
"""

from __future__ import annotations

import argparse
import sys

import anyio
from mcp import Client, types

from mcp_probe_lib import dump, emit, error_json


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("tools", nargs="+")
    args = parser.parse_args()
    asked: list[str] = []

    async def elicit(_ctx, params) -> types.ElicitResult:
        asked.append("elicitation/create")
        properties = dict(params.requested_schema.get("properties", {}))
        answers = {"name": "Alice", "color": "blue", "ok": True, "context": "tests"}
        return types.ElicitResult(action="accept", content={k: answers.get(k, "x") for k in properties})

    async def sample(_ctx, _params) -> types.CreateMessageResult:
        asked.append("sampling/createMessage")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="Paris"), model="test-model"
        )

    async def roots(_ctx) -> types.ListRootsResult:
        asked.append("roots/list")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work")])

    results = {}
    async with Client(
        args.url,
        mode="2026-07-28",
        elicitation_callback=elicit,
        sampling_callback=sample,
        list_roots_callback=roots,
    ) as client:
        for tool in args.tools:
            try:
                result = await client.call_tool(tool, {})
                results[tool] = {"content": dump(list(result.content)), "isError": result.is_error}
            except Exception as exc:  # noqa: BLE001 - reported as JSON
                results[tool] = {"error": error_json(exc)}
    emit({"results": results, "asked": asked})
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
