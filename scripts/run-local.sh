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
echo "Try: curl -i -X POST http://127.0.0.1:7071/api/operations/report -H 'Content-Type: application/json' -d '{\"rows\": 1000, \"partitions\": 4}'"
.venv/bin/python -m durablehost start --app . --host 127.0.0.1 --port 7071
