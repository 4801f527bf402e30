#!/bin/bash
# Container health check without curl or wget: one HTTP/1.1 GET over bash's /dev/tcp, success
# when the status is 200. Installed in the image as /usr/local/bin/healthcheck.
#
# usage: healthcheck [PATH]        PATH defaults to /health (liveness); compose uses /ready.
#
# The port is HEALTHCHECK_PORT if set, else the port of BIND_ADDR, else the default port of the
# service running as PID 1 (the image runs one service binary per container, as PID 1).
set -euo pipefail

path=${1:-/health}
host=${HEALTHCHECK_HOST:-127.0.0.1}
port=${HEALTHCHECK_PORT:-}
if [[ -z $port && -n ${BIND_ADDR:-} ]]; then
    port=${BIND_ADDR##*:}
fi
if [[ -z $port ]]; then
    case $(cat /proc/1/comm) in
    gateway) port=8080 ;;
    auth-svc) port=8081 ;;
    predict-svc) port=8082 ;;
    feedback-svc) port=8083 ;;
    notify-svc) port=8084 ;;
    retrain-worker) port=8085 ;;
    *)
        echo "healthcheck: cannot tell which port to check; set HEALTHCHECK_PORT" >&2
        exit 2
        ;;
    esac
fi

# A refused connection fails the `exec` (and so the check) at once.
exec 3<>"/dev/tcp/$host/$port"
printf 'GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: healthcheck\r\nConnection: close\r\n\r\n' \
    "$path" "$host" >&3
if ! IFS= read -r -t "${HEALTHCHECK_TIMEOUT_SECS:-4}" status <&3; then
    echo "healthcheck: GET $path on port $port: no answer" >&2
    exit 1
fi
exec 3<&-
if [[ $status =~ ^HTTP/1\.[01]\ 200\  ]]; then
    exit 0
fi
echo "healthcheck: GET $path on port $port: ${status%$'\r'}" >&2
exit 1
