#!/bin/sh
# Container entrypoint: turns a short role into the real chariot-migrate command line.
#
#   proxy [ARGS]               strangler proxy: public :8000, admin API + /metrics :8001
#   service NAME [ARGS]        one of the eight services on its own port (account :9101 … configuration :9108)
#   controller [SERVICE…] [ARGS]  rollout controller replica (leader lease in Redis; /healthz /ready
#                              /metrics on :8002): chariot-migrate controller
#   up [ARGS]                  the whole local stack in one container (demos; loopback only)
#   anything else              passed to chariot-migrate as is (e.g. `status`, `shift account 5`, `--help`)
#
# Only here, inside the container, do we bind 0.0.0.0: a container's loopback is unreachable from
# outside it. The application's own default stays 127.0.0.1. Extra ARGS come last, so they win.
set -eu

CLI="${CHARIOT_MIGRATE_BIN:-chariot-migrate}"
BIND_HOST="${CHARIOT_BIND_HOST:-0.0.0.0}"

usage() {
    cat >&2 <<'EOF'
usage: entrypoint.sh proxy [ARGS] | service NAME [ARGS] | controller [SERVICE...] [ARGS] | up [ARGS]
                     | <any chariot-migrate arguments>
services: account asset-discovery risk-assessment capabilities integration-hub notification
          reporting configuration
EOF
}

# The port each service listens on (DESIGN §11: services 9101–9108, in phase order).
service_port() {
    case "$1" in
        account) echo 9101 ;;
        asset-discovery) echo 9102 ;;
        risk-assessment) echo 9103 ;;
        capabilities) echo 9104 ;;
        integration-hub) echo 9105 ;;
        notification) echo 9106 ;;
        reporting) echo 9107 ;;
        configuration) echo 9108 ;;
        *) return 1 ;;
    esac
}

if [ "$#" -eq 0 ]; then
    usage
    exit 64
fi

role="$1"
shift
case "$role" in
    proxy)
        # Routes and state store come from CHARIOT_MIGRATE_ROUTES / CHARIOT_MIGRATE_STATE.
        exec "$CLI" proxy --host "$BIND_HOST" --port "${CHARIOT_PROXY_PORT:-8000}" \
            --admin-host "$BIND_HOST" --admin-port "${CHARIOT_ADMIN_PORT:-8001}" \
            --workers "${CHARIOT_PROXY_WORKERS:-1}" "$@"
        ;;
    service)
        if [ "$#" -eq 0 ]; then
            echo "entrypoint: 'service' needs a service name" >&2
            usage
            exit 64
        fi
        name="$1"
        shift
        if ! port="$(service_port "$name")"; then
            echo "entrypoint: unknown service '$name'" >&2
            usage
            exit 64
        fi
        exec "$CLI" service run "$name" --host "$BIND_HOST" --port "${CHARIOT_SERVICE_PORT:-$port}" "$@"
        ;;
    controller)
        # No service named: every service of routes.yaml, in phase order.
        exec "$CLI" controller --health-host "$BIND_HOST" --health-port "${CHARIOT_CONTROLLER_PORT:-8002}" "$@"
        ;;
    up)
        # `up` binds loopback only (it has no --host yet): reach it inside the container
        # (docker exec) or run the stack as separate containers (deploy/compose.yaml).
        exec "$CLI" up "$@"
        ;;
    chariot-migrate)
        exec "$CLI" "$@"
        ;;
    *)
        exec "$CLI" "$role" "$@"
        ;;
esac
