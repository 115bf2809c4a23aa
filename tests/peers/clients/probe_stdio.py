#!/usr/bin/env python3
"""MCP probe over stdio; launches the server command. See probe.py for the output format.

usage: probe_stdio.py [--call TOOL ARGS_JSON]... [--read URI]... [--prompt NAME ARGS_JSON]...
                      [--ping] [--list] [--strict] -- CMD [ARGS...]
"""

import sys

from probe import main

if __name__ == "__main__":
    sys.exit(main("stdio", sys.argv[1:]))
