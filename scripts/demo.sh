#!/usr/bin/env bash
# The main job on the embedded defaults: prepare the model, ingest samples/, serve the API,
# stream one cited answer through it, then point at the chat page. Run after
# scripts/setup.sh (make demo does both).
set -euo pipefail
cd "$(dirname "$0")/.."
RAGLINE=.venv/bin/ragline
PORT=${RAGLINE_API__PORT:-8000}
QUESTION=${QUESTION:-"What does LayoutParser provide?"}

$RAGLINE model prepare
$RAGLINE ingest samples --collection demo
$RAGLINE collections

LOG=var/serve.log
mkdir -p var
RAGLINE_API__PORT=$PORT $RAGLINE serve --port "$PORT" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
echo "serving on http://127.0.0.1:$PORT (log: $LOG); waiting for the engine to start..."
if ! $RAGLINE chat --collection demo --url "http://127.0.0.1:$PORT" --wait 300 "$QUESTION"; then
  echo "chat failed; last lines of $LOG:" >&2
  tail -n 30 "$LOG" >&2
  exit 1
fi

# The chat page is served by the same process. In a terminal the server stays up for it
# (KEEP_SERVING=0 to stop here); elsewhere (CI) the demo ends and says how to get it back.
echo
if [[ ${KEEP_SERVING:-$([[ -t 0 && -t 1 ]] && echo 1 || echo 0)} == 1 ]]; then
  echo "chat page: http://127.0.0.1:$PORT/ (collection \"demo\"; Ctrl+C stops the server)"
  wait $SERVER
else
  echo "chat page: run '$RAGLINE serve --port $PORT' and open http://127.0.0.1:$PORT/"
fi
