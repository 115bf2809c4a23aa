"""A legacy HTTP+SSE (MCP 2024-11-05) server for Bulwark's SSE upstream tests:
the Python SDK's MCPServer run with transport="sse" (GET /sse, POST /messages/).

Usage: sse_server.py PORT. Uvicorn reports "Uvicorn running on ..." on stderr
once it listens. Tools: `echo` (returns its message), `grow` (adds the tool
`grown`, then sends notifications/tools/list_changed and a log message).
"""

import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("bulwark-sse-peer")


@server.tool()
def echo(message: str) -> str:
    """Returns its message."""
    return message


def grown() -> str:
    """A tool that exists once `grow` was called."""
    return "grown"


@server.tool()
async def grow(ctx: Context) -> str:
    """Adds the tool `grown` and announces the change."""
    server.add_tool(grown)
    await ctx.session.send_tool_list_changed()
    await ctx.info("grew a tool")
    return "grew"


if __name__ == "__main__":
    server.run(transport="sse", host="127.0.0.1", port=int(sys.argv[1]))
