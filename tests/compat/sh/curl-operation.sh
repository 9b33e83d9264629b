#!/usr/bin/env bash
# Start an operation with curl and poll it to its result, as a shell script would.
#
#   curl-operation.sh run <base-url> <kind> <input-json>
#   curl-operation.sh resume <monitor-url>
#
# The final answer goes to stdout: the result, or the server's problem body. Exit 0 on
# success, else curl's own exit code (22: the server answered >= 400; --fail-with-body keeps
# the problem body, plain -f would throw it away), 28 when OPS_TIMEOUT_SECONDS ran out.
# `started <id>` goes to stderr after the 202. With CURL_LOG=<file>, one '|'-separated line
# per HTTP exchange is appended there: method, code, redirects followed, Retry-After, Location,
# final URL, the body's `status` word.
set -euo pipefail

log=${CURL_LOG:-/dev/null}
deadline=$((SECONDS + ${OPS_TIMEOUT_SECONDS:-120}))
# %header{} needs curl >= 7.84.
# Fields are split on '|': a tab would not do, `read` merges runs of whitespace separators
# and an absent Retry-After would shift the fields after it.
write_out='%{method}|%{http_code}|%{num_redirects}|%header{retry-after}|%header{location}|%{url_effective}'
body=$(mktemp)
trap 'rm -f "$body"' EXIT

status_word() { # the first "status": "<word>" of the body: the operation's own
    grep -o '"status" *: *"[A-Za-z]*"' "$body" | head -n 1 | sed 's/.*"\([A-Za-z]*\)"$/\1/' || true
}

# curl "$@" with the body in $body; sets $meta; logs the exchange; fails as curl failed.
exchange() {
    local rc=0
    meta=$(curl -sS --fail-with-body --max-time 30 -o "$body" -w "$write_out" "$@") || rc=$?
    printf '%s|%s\n' "$meta" "$(status_word)" >>"$log"
    if ((rc != 0)); then
        cat "$body"
        exit "$rc"
    fi
}

poll() { # $1: the monitor URL, $2: seconds to wait first
    local url=$1 wait=$2 retry_after
    while :; do
        if ((SECONDS + wait > deadline)); then
            echo "operation $url still running after ${OPS_TIMEOUT_SECONDS:-120}s" >&2
            exit 28
        fi
        sleep "$wait"
        # -L follows the monitor's 303 to the result.
        exchange -L "$url"
        case $(status_word) in
        NotStarted | Running)
            IFS='|' read -r _ _ _ retry_after _ <<<"$meta"
            # Seconds only; an HTTP-date (or nothing) falls back to 1 s.
            [[ $retry_after =~ ^[0-9]+$ ]] || retry_after=1
            wait=$retry_after
            ;;
        *)
            cat "$body"
            return
            ;;
        esac
    done
}

case ${1:-} in
run)
    exchange -X POST -H 'Content-Type: application/json' --data "$4" "$2/api/operations/$3"
    IFS='|' read -r _ _ _ retry_after location _ <<<"$meta"
    echo "started ${location##*/}" >&2
    [[ $retry_after =~ ^[0-9]+$ ]] || retry_after=1
    poll "$location" "$retry_after"
    ;;
resume)
    poll "$2" 0
    ;;
*)
    echo "usage: $0 run <base-url> <kind> <input-json> | resume <monitor-url>" >&2
    exit 2
    ;;
esac
