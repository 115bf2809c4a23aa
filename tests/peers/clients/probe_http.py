#!/usr/bin/env python3
"""MCP probe over streamable HTTP. See probe.py for the output format.

usage: probe_http.py URL [--headers JSON] [--call TOOL ARGS_JSON]... [--read URI]...
                     [--prompt NAME ARGS_JSON]... [--ping] [--list] [--strict]
"""

import sys

from probe import main

if __name__ == "__main__":
    sys.exit(main("http", sys.argv[1:]))
