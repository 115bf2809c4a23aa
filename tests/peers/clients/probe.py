"""One-shot MCP probe shared by probe_http.py and probe_stdio.py.

Connects, initializes, lists tools/resources/prompts, runs the requested steps
in command-line order and prints ONE JSON object on stdout:

  {"ok": true, "transport": "http"|"stdio", "initialize": {...},
   "tools": [...], "resources": [...], "prompts": [...],
   "steps": [{"op": "call", "tool": T, "args": {...}, "ok": true,
              "result": {"isError": false, "text": "...", "content": [...]}}, ...]}

A failing step is recorded as {"ok": false, "error": {"code", "message", "type"}}
and does not abort the run. Exit status: 0 when connected and initialized
(add --strict to also require every step to succeed with isError false),
1 when the connection/handshake failed (then {"ok": false, "error": ...}),
2 for bad usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from mcp_probe_lib import (
    Json,
    call_result_json,
    emit,
    error_json,
    init_json,
    list_everything,
    open_session,
    parse_json_arg,
    prompt_result_json,
    read_result_json,
    timed,
)


class _Step(argparse.Action):
    """Appends (op, values) to namespace.steps, preserving command-line order."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        steps = getattr(namespace, "steps", None) or []
        steps.append((self.dest, values if isinstance(values, list) else [values]))
        namespace.steps = steps


def build_parser(transport: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=f"MCP {transport} probe (official mcp SDK)")
    if transport == "http":
        p.add_argument("url", help="streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp")
        p.add_argument("--headers", default="{}", help='extra HTTP headers as JSON object, e.g. {"Authorization": "Bearer x"}')
    p.add_argument("--call", dest="call", nargs=2, metavar=("TOOL", "ARGS_JSON"), action=_Step, help="tools/call")
    p.add_argument("--read", dest="read", metavar="URI", action=_Step, help="resources/read")
    p.add_argument("--prompt", dest="prompt", nargs=2, metavar=("NAME", "ARGS_JSON"), action=_Step, help="prompts/get")
    p.add_argument("--ping", dest="ping", nargs=0, action=_Step, help="ping")
    p.add_argument("--list", action="store_true", help="full tool/resource/prompt definitions instead of names")
    p.add_argument("--no-list", action="store_true", help="skip the listings")
    p.add_argument("--timeout", type=float, default=60.0, help="overall deadline in seconds (default 60)")
    p.add_argument("--request-timeout", type=float, default=None, help="per-request read timeout in seconds")
    p.add_argument("--strict", action="store_true", help="exit 3 if any step failed or returned isError")
    p.set_defaults(steps=[])
    return p


async def run(args: argparse.Namespace, url: str | None, command: list[str] | None) -> tuple[Json, int]:
    headers: dict[str, str] | None = None
    if url is not None:
        headers = parse_json_arg(args.headers, "--headers")
    out: Json = {"ok": False, "transport": "http" if url is not None else "stdio"}
    steps_out: list[Json] = []
    try:
        with anyio.fail_after(args.timeout):
            async with open_session(url, command, headers, args.request_timeout) as session:
                try:
                    out["initialize"] = init_json(await session.initialize())
                except Exception as exc:  # noqa: BLE001
                    out["error"] = error_json(exc)
                    out["stage"] = "initialize"
                    return out, 1
                out["ok"] = True
                if not args.no_list:
                    out.update(await list_everything(session, args.list))
                for op, values in args.steps:
                    step: Json = {"op": op}
                    if op == "call":
                        tool, arguments = values[0], parse_json_arg(values[1], f"--call {values[0]}")
                        step.update(tool=tool, args=arguments)
                        step.update(await timed(lambda: _call(session, tool, arguments)))
                    elif op == "read":
                        uri = values[0]
                        step["uri"] = uri
                        step.update(await timed(lambda: _read(session, uri)))
                    elif op == "prompt":
                        name, arguments = values[0], parse_json_arg(values[1], f"--prompt {values[0]}")
                        step.update(name=name, args=arguments)
                        step.update(await timed(lambda: _prompt(session, name, arguments)))
                    elif op == "ping":
                        step.update(await timed(lambda: _ping(session)))
                    steps_out.append(step)
    except Exception as exc:  # noqa: BLE001 - connection-level failure
        if out["ok"]:
            # Connected fine, but tearing down (or a step) blew up the transport.
            out["teardownError"] = error_json(exc)
        else:
            out["error"] = error_json(exc)
            out.setdefault("stage", "connect")
            out["steps"] = steps_out
            return out, 1
    out["steps"] = steps_out
    if args.strict and any(not s["ok"] or s.get("result", {}).get("isError") for s in steps_out):
        return out, 3
    return out, 0


async def _call(session: Any, tool: str, arguments: Any) -> Json:
    return call_result_json(await session.call_tool(tool, arguments))


async def _read(session: Any, uri: str) -> Json:
    return read_result_json(await session.read_resource(uri))


async def _prompt(session: Any, name: str, arguments: Any) -> Json:
    return prompt_result_json(await session.get_prompt(name, arguments))


async def _ping(session: Any) -> Json:
    await session.send_ping()
    return {}


def main(transport: str, argv: list[str]) -> int:
    command: list[str] | None = None
    if transport == "stdio":
        if "--" not in argv:
            print("usage: probe_stdio.py [OPTIONS] -- CMD [ARGS...]", file=sys.stderr)
            return 2
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
        if not command:
            print("probe_stdio.py: missing command after --", file=sys.stderr)
            return 2
    args = build_parser(transport).parse_args(argv)
    url = args.url if transport == "http" else None
    out, code = anyio.run(run, args, url, command)
    emit(out)
    return code
