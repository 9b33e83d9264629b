#!/usr/bin/env bash
# `make run`: Azurite (data in .azurite/) and the Function App on durablehost at
# http://127.0.0.1:7071. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .azurite
node_modules/.bin/azurite --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 \
    --location .azurite --skipApiVersionCheck --disableTelemetry --silent &
azurite_pid=$!
trap 'kill "$azurite_pid" 2>/dev/null || true' EXIT
export AzureWebJobsStorage="${AzureWebJobsStorage:-UseDevelopmentStorage=true}"
# Webhooks and ingest may reach this machine (local receivers and sources); the app
# refuses loopback and private addresses unless allowed. An explicitly empty value keeps
# the production policy: OPS_OUTBOUND_ALLOW= make run
export OPS_OUTBOUND_ALLOW="${OPS_OUTBOUND_ALLOW-127.0.0.0/8,::1,localhost}"
cat <<'HELP'
Try:
  curl -si -X POST http://127.0.0.1:7071/api/operations/report \
       -H 'Content-Type: application/json' -d '{"rows": 100000, "partitions": 8}'
  curl -si <operationUri from the answer>     # 200 + Retry-After while running, then 303
  curl -sL <operationUri>                     # follows the 303 to the JSON result
HELP
.venv/bin/python -m durablehost start --app . --host 127.0.0.1 --port 7071
