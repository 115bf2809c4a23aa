"""Shared helpers for Bulwark's MCP test clients (official `mcp` SDK only).

Every helper turns SDK objects into plain JSON (wire spelling, camelCase) so
that the Rust integration tests can assert on the output with serde_json.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

Json = dict[str, Any]


def dump(model: Any) -> Any:
    """Pydantic model (or list of them) -> JSON value in wire spelling."""
    if isinstance(model, list):
        return [dump(m) for m in model]
    if hasattr(model, "model_dump"):
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return model


def leaf_exception(exc: BaseException) -> BaseException:
    """Unwrap (nested) exception groups from anyio task groups to the first leaf."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def error_json(exc: BaseException) -> Json:
    """{"code", "message", "type"[, "data"]} for any exception; code is None unless MCP."""
    exc = leaf_exception(exc)
    reported = getattr(exc, "error", None)
    if isinstance(reported, dict):
        return reported
    if isinstance(exc, MCPError):
        out: Json = {"code": exc.code, "message": exc.message, "type": type(exc).__name__}
        if exc.data is not None:
            out["data"] = exc.data
        return out
    message = str(exc) or repr(exc)
    if isinstance(exc, TimeoutError):
        message = message if str(exc) else "timed out"
    return {"code": None, "message": message, "type": type(exc).__name__}


def emit(obj: Json) -> None:
    """Print one JSON object as one line on stdout and flush it."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def parse_json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{what}: invalid JSON {text!r}: {exc}") from exc


@asynccontextmanager
async def open_session(
    url: str | None,
    command: list[str] | None,
    headers: dict[str, str] | None = None,
    read_timeout: float | None = None,
    env: dict[str, str] | None = None,
    callbacks: dict[str, Any] | None = None,
    message_handler: Any = None,
) -> AsyncIterator[ClientSession]:
    """Connect over streamable HTTP (url) or stdio (command) and yield an open session.

    The session is *not* initialized yet: callers call `session.initialize()`
    so that a failed handshake can be reported on its own.
    """
    if url is not None:
        http = httpx2.AsyncClient(
            headers=headers or {},
            timeout=httpx2.Timeout(30.0, read=300.0),
        )
        async with http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(
                    read,
                    write,
                    read_timeout_seconds=read_timeout,
                    message_handler=message_handler,
                    **(callbacks or {}),
                ) as session:
                    yield session
    elif command:
        # The SDK gives the server a minimal environment; `env` is merged over it.
        params = StdioServerParameters(command=command[0], args=command[1:], env=env or None)
        async with stdio_client(params) as (read, write):
            async with ClientSession(
                    read, write, read_timeout_seconds=read_timeout, message_handler=message_handler
                ) as session:
                yield session
    else:
        raise ValueError("need a URL or a command")


def init_json(result: Any) -> Json:
    return {
        "protocolVersion": result.protocol_version,
        "serverInfo": dump(result.server_info),
        "capabilities": dump(result.capabilities),
        "instructions": result.instructions,
    }


def call_result_json(result: Any) -> Json:
    """A CallToolResult as {"isError", "text", "content"[, "structuredContent"]}."""
    content = dump(list(result.content))
    texts = [c.get("text", "") for c in content if c.get("type") == "text"]
    out: Json = {"isError": bool(result.is_error), "text": "\n".join(texts), "content": content}
    if result.structured_content is not None:
        out["structuredContent"] = result.structured_content
    return out


def read_result_json(result: Any) -> Json:
    contents = dump(list(result.contents))
    texts = [c.get("text", "") for c in contents if "text" in c]
    return {"contents": contents, "text": "\n".join(texts)}


def prompt_result_json(result: Any) -> Json:
    messages = dump(list(result.messages))
    out: Json = {"messages": messages}
    if result.description is not None:
        out["description"] = result.description
    return out


async def timed(op: Callable[[], Awaitable[Json]]) -> Json:
    """Run one operation; never raises (except cancellation), returns ok/result or error."""
    started = time.time()
    t0 = time.monotonic()
    try:
        result = await op()
        out: Json = {"ok": True, "result": result}
    except Exception as exc:  # noqa: BLE001 - every failure is an observation
        out = {"ok": False, "error": error_json(exc)}
    out["ts"] = started
    out["elapsedMs"] = round((time.monotonic() - t0) * 1000, 1)
    return out


async def list_everything(session: ClientSession, full: bool) -> Json:
    """tools/resources/prompts listings; each an array of names or {"error": ...}."""
    out: Json = {}

    async def tools() -> Any:
        r = await session.list_tools()
        return dump(list(r.tools)) if full else [t.name for t in r.tools]

    async def resources() -> Any:
        r = await session.list_resources()
        return dump(list(r.resources)) if full else [str(x.uri) for x in r.resources]

    async def prompts() -> Any:
        r = await session.list_prompts()
        return dump(list(r.prompts)) if full else [p.name for p in r.prompts]

    for key, op in (("tools", tools), ("resources", resources), ("prompts", prompts)):
        try:
            out[key] = await op()
        except Exception as exc:  # noqa: BLE001
            out[key] = {"error": error_json(exc)}
    return out
