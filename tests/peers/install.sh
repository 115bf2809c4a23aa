#!/usr/bin/env bash
# Installs the pinned MCP test peers used by Bulwark's integration tests:
#   <repo>/target/peers/venv   Python venv with tests/peers/requirements.txt
#   <repo>/target/peers/node   npm ci of tests/peers/package.json + package-lock.json
# Idempotent: each part records the sha256 of its pins (plus the interpreter
# version) in a stamp file and is skipped while the stamp matches.
# Env: BULWARK_PEERS_DIR overrides the install dir; PYTHON picks the interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dest="${BULWARK_PEERS_DIR:-$root/target/peers}"
python="${PYTHON:-python3}"

log() { printf 'peers: %s\n' "$*" >&2; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

mkdir -p "$dest"

# --- Python venv -----------------------------------------------------------
venv="$dest/venv"
py_version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
py_want="$( { cat "$here/requirements.txt"; echo "python=$py_version"; } | sha256sum | cut -d' ' -f1)"
py_stamp="$venv/.bulwark-pins.sha256"
if [[ -x "$venv/bin/python" && -f "$py_stamp" && "$(cat "$py_stamp")" == "$py_want" ]]; then
    log "python venv up to date ($venv, python $py_version)"
else
    log "creating python venv at $venv (python $py_version)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    log "pip install -r tests/peers/requirements.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$here/requirements.txt"
    "$venv/bin/python" -c 'import mcp.client.streamable_http, mcp.client.stdio' \
        || { log "mcp SDK import failed after install"; exit 1; }
    echo "$py_want" >"$py_stamp"
    log "python venv ready"
fi

# --- Node peers ------------------------------------------------------------
node_dir="$dest/node"
node_version="$(node --version)"
node_want="$( { cat "$here/package.json" "$here/package-lock.json"; echo "node=$node_version"; } | sha256sum | cut -d' ' -f1)"
node_stamp="$node_dir/.bulwark-pins.sha256"
if [[ -d "$node_dir/node_modules" && -f "$node_stamp" && "$(cat "$node_stamp")" == "$node_want" ]]; then
    log "node peers up to date ($node_dir, node $node_version)"
else
    log "npm ci into $node_dir (node $node_version)"
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    [[ -x "$node_dir/node_modules/.bin/mcp-server-everything" ]] \
        || { log "mcp-server-everything missing after npm ci"; exit 1; }
    echo "$node_want" >"$node_stamp"
    log "node peers ready"
fi

log "installed: $venv/bin/python, $node_dir/node_modules/.bin"
