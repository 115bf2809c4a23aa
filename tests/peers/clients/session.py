#!/usr/bin/env python3
"""Long-lived MCP client session driven line by line over stdin (official mcp SDK).

usage: session.py URL [--headers JSON] [--request-timeout S] [--repeat ...]
       session.py [--env JSON] [--request-timeout S] [--repeat ...] -- CMD [ARGS...]     (stdio)

ONE session is opened and initialized, then stdout carries one JSON object per
line, flushed at once:
  {"event": "ready", "initialize": {...}}           after the handshake
  {"event": "fatal", "error": {...}}                 the session could not start
                                                     or its transport died (exit status 1);
                                                     commands still in flight are first
                                                     answered with that error
  {"event": "bye"}                                   after `quit` / EOF (exit 0)
  {"event": "notification", "method": "notifications/tools/list_changed"}
                                                     a server notification arrived

REPL mode (default). Each stdin line is a JSON command; each command is run in
its own task (so commands overlap) and answered by exactly ONE line that echoes
its "id" (a 1-based line counter when the command has none):
  {"id": 1, "call": "echo", "args": {"message": "hi"}, "timeout": 5}
     (optional "meta": {...} is sent as the request's params._meta, e.g. a traceparent)
     -> {"id": 1, "op": "call", "ok": true, "result": {"isError": false, "text": ..., "content": [...]},
         "ts": <unix start>, "elapsedMs": 3.1}
     -> {"id": 1, "op": "call", "ok": false, "error": {"code": -32603, "message": ..., "type": ...}, ...}
  {"id": 2, "concurrent": 8, "call": "echo", "args": {...}}
     -> {"id": 2, "op": "call", "concurrent": 8, "okCount": 8, "results": [{"index": 0, "ok": ...}, ...]}
  {"id": 3, "list": "tools" | "resources" | "prompts" | "all"}
  {"id": 4, "read": "demo://..."}
  {"id": 5, "prompt": "name", "args": {...}}
  {"id": 6, "ping": true}
  {"id": 7, "subscribe": "bulwark://echo/demo://greeting"}   (resources/subscribe)
  {"id": 8, "unsubscribe": "bulwark://echo/demo://greeting"} (resources/unsubscribe)
  {"id": 9, "complete": "echo__greet", "argument": {"name": "name", "value": "A"}}
                                                             (completion/complete of a prompt argument)
  quit        (or {"quit": true}): in-flight commands are cancelled and
              answered with type "Cancelled"; on EOF they are awaited instead

Errors the server returns (JSON-RPC errors, HTTP 4xx/5xx, timeouts) are
per-command results; only a dead transport (e.g. connection refused) is fatal,
which is how the official SDK behaves.

Loop mode (--repeat TOOL ARGS_JSON): calls the tool every --interval-ms until
--until-file exists or --max-calls calls were made, one line per call with "seq".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread

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


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, str | None, list[str] | None]:
    command: list[str] | None = None
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
        if not command:
            raise SystemExit("session.py: missing command after --")
    p = argparse.ArgumentParser(description="stdin-driven MCP client session")
    if command is None:
        p.add_argument("url", help="streamable HTTP endpoint")
        p.add_argument("--headers", default="{}", help="extra HTTP headers as JSON object")
    else:
        p.add_argument("--env", default="{}", help="extra server environment as JSON object")
    p.add_argument("--request-timeout", type=float, default=30.0, help="default per-request timeout (s)")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="deadline for the handshake (s)")
    p.add_argument("--repeat", nargs=2, metavar=("TOOL", "ARGS_JSON"), help="loop mode: call TOOL repeatedly")
    p.add_argument("--interval-ms", type=float, default=200.0, help="loop mode: pause between calls")
    p.add_argument("--until-file", help="loop mode: stop once this path exists")
    p.add_argument("--max-calls", type=int, default=None, help="loop mode: stop after N calls")
    args = p.parse_args(argv)
    return args, (args.url if command is None else None), command


class Repl:
    def __init__(self, session: Any, default_timeout: float) -> None:
        self.session = session
        self.default_timeout = default_timeout
        # Commands started but not answered yet: answered with the fatal error if the session dies.
        self.pending: dict[int, Json] = {}
        self._seq = 0

    async def run_one(self, cmd: Json, cmd_id: Any) -> None:
        self._seq += 1
        key = self._seq
        self.pending[key] = {"id": cmd_id, "op": _op_of(cmd)}
        out = await self.handle(cmd, cmd_id)  # cancelled -> stays pending, see fail_pending
        self.pending.pop(key, None)
        emit(out)

    def fail_pending(self, error: Json) -> None:
        for entry in list(self.pending.values()):
            emit({**entry, "ok": False, "error": error})
        self.pending.clear()

    async def _call(self, tool: str, arguments: Any, timeout: float, meta: Any = None) -> Json:
        with anyio.fail_after(timeout):
            return call_result_json(
                await self.session.call_tool(tool, arguments, read_timeout_seconds=timeout, meta=meta)
            )

    async def handle(self, cmd: Json, cmd_id: Any) -> Json:
        timeout = float(cmd.get("timeout", self.default_timeout))
        out: Json = {"id": cmd_id}
        if "call" in cmd:
            tool, arguments = str(cmd["call"]), cmd.get("args") or {}
            meta = cmd.get("meta")
            out["op"] = "call"
            n = int(cmd.get("concurrent", 0))
            if n <= 0:
                out.update(await timed(lambda: self._call(tool, arguments, timeout, meta)))
                return out
            results: list[Json | None] = [None] * n

            async def one(i: int) -> None:
                r = await timed(lambda: self._call(tool, arguments, timeout))
                results[i] = {"index": i, **r}

            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(one, i)
            done = [r for r in results if r is not None]
            out.update(concurrent=n, okCount=sum(1 for r in done if r["ok"]), results=done)
            return out
        if "list" in cmd:
            what = str(cmd["list"])
            out["op"] = "list"

            async def listing() -> Json:
                with anyio.fail_after(timeout):
                    everything = await list_everything(self.session, bool(cmd.get("full", False)))
                if what == "all":
                    return everything
                if what not in everything:
                    raise ValueError(f"unknown listing {what!r}")
                value = everything[what]
                if isinstance(value, dict) and "error" in value:
                    raise _Reported(value["error"])
                return {what: value}

            out.update(await timed(listing))
            return out
        if "read" in cmd:
            uri = str(cmd["read"])
            out["op"] = "read"

            async def read() -> Json:
                with anyio.fail_after(timeout):
                    return read_result_json(await self.session.read_resource(uri))

            out.update(await timed(read))
            return out
        if "prompt" in cmd:
            name, arguments = str(cmd["prompt"]), cmd.get("args") or {}
            out["op"] = "prompt"

            async def prompt() -> Json:
                with anyio.fail_after(timeout):
                    return prompt_result_json(await self.session.get_prompt(name, arguments))

            out.update(await timed(prompt))
            return out
        for op in ("subscribe", "unsubscribe"):
            if op in cmd:
                uri = str(cmd[op])
                out["op"] = op
                method = self.session.subscribe_resource if op == "subscribe" else self.session.unsubscribe_resource

                async def subscription() -> Json:
                    with anyio.fail_after(timeout):
                        await method(uri)
                    return {}

                out.update(await timed(subscription))
                return out
        if "complete" in cmd:
            prompt = str(cmd["complete"])
            argument = {str(k): str(v) for k, v in (cmd.get("argument") or {}).items()}
            out["op"] = "complete"

            async def complete() -> Json:
                from mcp.types import PromptReference

                with anyio.fail_after(timeout):
                    result = await self.session.complete(PromptReference(type="ref/prompt", name=prompt), argument)
                return {"completion": result.completion.model_dump(mode="json", exclude_none=True)}

            out.update(await timed(complete))
            return out
        if "ping" in cmd:
            out["op"] = "ping"

            async def ping() -> Json:
                with anyio.fail_after(timeout):
                    await self.session.send_ping()
                return {}

            out.update(await timed(ping))
            return out
        out.update(op="unknown", ok=False, error={"code": None, "message": f"bad command: {cmd!r}", "type": "BadCommand"})
        return out


def _op_of(cmd: Json) -> str:
    for op in ("call", "list", "read", "prompt", "subscribe", "unsubscribe", "complete", "ping"):
        if op in cmd:
            return op
    return "unknown"


class _Reported(Exception):
    """An error already in JSON form (from a listing)."""

    def __init__(self, error: Json) -> None:
        super().__init__(error.get("message", "error"))
        self.error = error


async def run_repl(repl: Repl, tg: anyio.abc.TaskGroup) -> str:
    """Reads commands until EOF ("eof") or quit ("quit")."""
    line_no = 0
    while True:
        # abandon_on_cancel: a dying session must not wait for the next stdin line.
        raw = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if raw == "":
            return "eof"
        line_no += 1
        line = raw.strip()
        if not line:
            continue
        if line in ("quit", "exit"):
            return "quit"
        try:
            cmd = json.loads(line)
        except json.JSONDecodeError as exc:
            emit({"id": line_no, "op": "unknown", "ok": False,
                  "error": {"code": None, "message": f"bad JSON: {exc}", "type": "BadCommand"}})
            continue
        if not isinstance(cmd, dict):
            emit({"id": line_no, "op": "unknown", "ok": False,
                  "error": {"code": None, "message": "command must be a JSON object", "type": "BadCommand"}})
            continue
        if cmd.get("quit"):
            return "quit"
        tg.start_soon(repl.run_one, cmd, cmd.get("id", line_no))


async def run_loop(session: Any, args: argparse.Namespace) -> None:
    tool = args.repeat[0]
    arguments = parse_json_arg(args.repeat[1], "--repeat")
    repl = Repl(session, args.request_timeout)
    seq = 0
    while True:
        if args.until_file and os.path.exists(args.until_file):
            return
        if args.max_calls is not None and seq >= args.max_calls:
            return
        seq += 1
        out = await repl.handle({"call": tool, "args": arguments}, None)
        out.pop("id", None)
        emit({"seq": seq, **out})
        await anyio.sleep(args.interval_ms / 1000.0)


async def report_notification(message: Any) -> None:
    """Surfaces every server notification as an event line."""
    if isinstance(message, Exception):
        return
    method = getattr(message, "method", None) or getattr(getattr(message, "root", None), "method", None)
    emit({"event": "notification", "method": method, "ts": time.time()})


async def main_async(args: argparse.Namespace, url: str | None, command: list[str] | None) -> int:
    headers = parse_json_arg(args.headers, "--headers") if url is not None else None
    env = parse_json_arg(args.env, "--env") if url is None else None
    started = False
    repl: Repl | None = None
    try:
        async with open_session(
            url, command, headers, args.request_timeout, env, message_handler=report_notification
        ) as session:
            try:
                with anyio.fail_after(args.connect_timeout):
                    init = await session.initialize()
            except Exception as exc:  # noqa: BLE001
                emit({"event": "fatal", "stage": "initialize", "error": error_json(exc)})
                return 1
            started = True
            emit({"event": "ready", "initialize": init_json(init), "ts": time.time()})
            if args.repeat:
                await run_loop(session, args)
            else:
                repl = Repl(session, args.request_timeout)
                async with anyio.create_task_group() as tg:
                    if await run_repl(repl, tg) == "quit":
                        tg.cancel_scope.cancel()
                    # on EOF the task group waits for the commands still in flight
                repl.fail_pending({"code": None, "message": "cancelled by quit", "type": "Cancelled"})
    except Exception as exc:  # noqa: BLE001 - the session's transport died
        error = error_json(exc)
        if repl is not None:
            repl.fail_pending({**error, "sessionDied": True})
        emit({"event": "fatal", "stage": "session" if started else "connect", "error": error})
        return 1
    emit({"event": "bye"})
    return 0


def main() -> int:
    args, url, command = parse_args(sys.argv[1:])
    return anyio.run(main_async, args, url, command)


if __name__ == "__main__":
    sys.exit(main())
