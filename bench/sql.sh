#!/usr/bin/env bash
# bench/sql.sh -- DORA/s of leased's SQL paths, measured with perfdhcp on this machine.
#
#   sudo bench/sql.sh                  # max sustained DORA/s (<= MAXDROP % failed) for every mode
#   sudo bench/sql.sh rate 1000 10     # one run of every mode at 1000 DORA/s for 10 s
#   MODES="pg chain-pg" sudo bench/sql.sh
#
# Modes:
#   pg        [store] backend = "postgres" (ACK after the lease row's COMMIT)
#   my        [store] backend = "mysql"    (MariaDB here)
#   chain-pg  the SQL assignment chain (pydhcpdb users table, one row per perfdhcp MAC, so every
#             query hits) against PostgreSQL, leases in the embedded store
#   chain-my  the same chain against MariaDB
#   kea-pg / kea-my   kea-dhcp4 (single-threaded) with its PostgreSQL / MySQL lease backend,
#             same database server, same namespaces (only when kea-admin can create its schema)
#
# Topology as bench/compare.sh: two namespaces (lsql-srv, lsql-cli) joined by a veth pair,
# addresses in 198.18.0.0/15 only, perfdhcp as a relay (giaddr 198.18.0.2). The databases are
# reached through their unix sockets (visible across network namespaces). Server pinned to CPU
# 0, perfdhcp to CPU 1; the database server runs wherever the kernel puts it (it shares the
# machine's 2 cores with both). Every loop is bounded; processes are stopped by PID; namespaces
# and databases are removed on exit.
#
# Environment: LEASED (default target/release/leased), CLIENTS (20000), PROBE_SECS (8),
# START_RATE (250), MAX_RATE (16000), BUDGET (150 s per mode), MAXDROP (1 = %), MODES.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/sql.sh builds network namespaces: run it as root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
: "${LEASED:=$HERE/../target/release/leased}" "${CLIENTS:=20000}" "${PROBE_SECS:=8}"
: "${START_RATE:=250}" "${MAX_RATE:=16000}" "${BUDGET:=150}" "${MAXDROP:=1}"
: "${SERVER_CPU=0}" "${CLIENT_CPU=1}" "${MODES:=pg my chain-pg chain-my kea-pg kea-my}"
for b in perfdhcp ip taskset psql mysql; do command -v "$b" >/dev/null || { echo "missing $b (sudo bash .ci/run installs it)" >&2; exit 1; }; done
[ -x "$LEASED" ] || { echo "no leased binary at $LEASED: cargo build --release" >&2; exit 1; }
PG_SOCK=/var/run/postgresql MY_SOCK=/run/mysqld/mysqld.sock DB=leased_bench
psql -h "$PG_SOCK" -U postgres -tAc 'SELECT 1' >/dev/null || { echo "PostgreSQL not reachable on $PG_SOCK" >&2; exit 1; }
mysql -uroot -S "$MY_SOCK" -e 'SELECT 1' >/dev/null || { echo "MariaDB not reachable on $MY_SOCK" >&2; exit 1; }

NS_SRV=lsql-srv NS_CLI=lsql-cli
RUN=$(mktemp -d /tmp/leased-sqlbench.XXXXXX); chmod 755 "$RUN"
SERVER_PID=
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
pin() { [ -n "$1" ] && echo "taskset -c $1"; }
pg() { psql -h "$PG_SOCK" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
my() { mysql -uroot -S "$MY_SOCK" "$@"; }

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
drop_dbs() { pg -c "DROP DATABASE IF EXISTS $DB" 2>/dev/null || true; my -e "DROP DATABASE IF EXISTS $DB" 2>/dev/null || true; }
cleanup() { set +e; stop_server; ip netns del "$NS_CLI" 2>/dev/null; ip netns del "$NS_SRV" 2>/dev/null; drop_dbs; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cleanup
ip netns add "$NS_SRV"; ip netns add "$NS_CLI"
for ns in "$NS_SRV" "$NS_CLI"; do
  nsx "$ns" ip link set lo up
  nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
done
ip link add qcli0 netns "$NS_CLI" type veth peer name qsrv0 netns "$NS_SRV"
nsx "$NS_SRV" ip addr add 198.18.0.1/15 dev qsrv0
nsx "$NS_CLI" ip addr add 198.18.0.2/15 dev qcli0
nsx "$NS_SRV" ip link set qsrv0 up; nsx "$NS_CLI" ip link set qcli0 up
nsx "$NS_CLI" sysctl -qw net.core.rmem_default=8388608 net.core.rmem_max=8388608 2>/dev/null || true

# A fresh database per run: pydhcpdb's users table with one row per perfdhcp MAC (perfdhcp -b
# mac=02:00:00:00:00:00 -R N varies the low bytes over 0..N-1), each with its own address in
# 198.18.128.0/17, outside the pool (198.19.0.0/16), so a lease there proves the chain decided.
fresh_db() {   # $1 = pg|my, $2 = users (with the users table) | empty
  drop_dbs
  case "$1" in pg) pg -c "CREATE DATABASE $DB" ;; my) my -e "CREATE DATABASE $DB" ;; esac
  [ "${2:-users}" = users ] || return 0
  case "$1" in
    pg) pg -d "$DB" -c "CREATE TABLE users (id INT PRIMARY KEY, ip VARCHAR(50) NOT NULL, mask VARCHAR(50) NOT NULL,
              router VARCHAR(50) NOT NULL, dns VARCHAR(100) NOT NULL, mac VARCHAR(50) NOT NULL, port VARCHAR(10) NOT NULL);
            CREATE INDEX users_mac ON users (mac);
            INSERT INTO users SELECT i, '198.18.' || (128 + (i + 1) / 256) || '.' || ((i + 1) % 256), '255.254.0.0',
              '198.18.0.1', '198.18.0.53', lpad(to_hex(x'020000000000'::bigint + i), 12, '0'), ''
            FROM generate_series(0, $CLIENTS - 1) AS i;" ;;
    my) my "$DB" -e "CREATE TABLE users (id INT PRIMARY KEY, ip VARCHAR(50) NOT NULL, mask VARCHAR(50) NOT NULL,
              router VARCHAR(50) NOT NULL, dns VARCHAR(100) NOT NULL, mac VARCHAR(50) NOT NULL, port VARCHAR(10) NOT NULL,
              INDEX users_mac (mac));
            INSERT INTO users SELECT seq, CONCAT('198.18.', 128 + (seq + 1) DIV 256, '.', (seq + 1) % 256), '255.254.0.0',
              '198.18.0.1', '198.18.0.53', LPAD(LOWER(HEX(2199023255552 + seq)), 12, '0'), ''
            FROM seq_0_to_$((CLIENTS - 1));" ;;
  esac
}

url() { case "$1" in pg) echo "postgres://postgres@localhost/$DB?host=$PG_SOCK" ;; my) echo "mysql://root@localhost/$DB?socket=$MY_SOCK" ;; esac; }

write_config() {   # $1 = mode, $2 = work dir
  local mode=$1 w=$2 store chain=""
  case "$mode" in
    pg|my) store="backend = \"$( [ "$mode" = pg ] && echo postgres || echo mysql)\"
url = \"$(url "$mode")\"" ;;
    chain-*) store="path = \"$w/leased.leases\""
      chain="[sql_assignment]
url = \"$(url "${mode#chain-}")\"
fallback = \"pools\"
timeout_ms = 1000
max_concurrency = 64
[[sql_assignment.queries]]
sql = \"SELECT ip, mask, router, dns FROM users WHERE mac = :ClientMacAddress\"" ;;
  esac
  cat > "$w/leased.toml" <<TOML
[server]
lease_time = 3600
renewal_time = 900
rebinding_time = 1800
[store]
$store
[logging]
level = "warn"
[[subnets]]
network = "198.18.0.0/15"
interface = "qsrv0"
routers = ["198.18.0.1"]
pools = ["198.19.0.1-198.19.255.254"]
$chain
TOML
}

write_kea() {   # $1 = pg|my, $2 = work dir
  local type host
  case "$1" in pg) type=postgresql host=$PG_SOCK ;; my) type=mysql host=localhost ;; esac
  cat > "$2/kea.json" <<JSON
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ "qsrv0" ], "dhcp-socket-type": "raw" },
    "lease-database": { "type": "$type", "name": "$DB", "host": "$host", "user": "$( [ "$1" = pg ] && echo postgres || echo root)", "password": "" },
    "multi-threading": { "enable-multi-threading": false },
    "valid-lifetime": 3600, "renew-timer": 900, "rebind-timer": 1800,
    "subnet4": [ { "id": 1, "subnet": "198.18.0.0/15",
        "pools": [ { "pool": "198.19.0.1 - 198.19.255.254" } ],
        "option-data": [ { "name": "routers", "data": "198.18.0.1" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$2/kea.log" } ], "severity": "WARN" } ] } }
JSON
}

start_server() {   # $1 = mode, $2 = work dir
  local mode=$1 w=$2
  case "$mode" in
    kea-*) KEA_PIDFILE_DIR=$w KEA_LOCKFILE_DIR=$w setsid ip netns exec "$NS_SRV" $(pin "$SERVER_CPU") kea-dhcp4 -c "$w/kea.json" >"$w/server.out" 2>&1 & ;;
    *) setsid ip netns exec "$NS_SRV" $(pin "$SERVER_CPU") "$LEASED" serve -c "$w/leased.toml" >"$w/server.out" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -5 "$w/server.out" >&2; return 1; }
    nsx "$NS_SRV" ss -Hulnp 'sport = :67' 2>/dev/null | grep -q "pid=" && { sleep 0.5; return 0; }
    sleep 0.1
  done
  return 1
}

prepare() {   # $1 = mode, $2 = work dir; a fresh database with what the mode needs
  local mode=$1 w=$2 db
  case "$mode" in pg|chain-pg|kea-pg) db=pg ;; *) db=my ;; esac
  case "$mode" in kea-*) fresh_db "$db" empty >/dev/null ;; *) fresh_db "$db" users >/dev/null ;; esac
  case "$mode" in
    kea-pg) kea-admin db-init pgsql -n "$DB" -u postgres -h "$PG_SOCK" >"$w/kea-admin.out" 2>&1 || return 1; write_kea pg "$w" ;;
    kea-my) kea-admin db-init mysql -n "$DB" -u root >"$w/kea-admin.out" 2>&1 || return 1; write_kea my "$w" ;;
    *) write_config "$mode" "$w" ;;
  esac
}

# run_once MODE RATE SECS -> RESULT line; sets R_PASS
run_once() {
  local mode=$1 rate=$2 secs=$3 w line
  w="$RUN/$mode-r$rate-$(date +%s%N)"; mkdir -p "$w"
  prepare "$mode" "$w" || { echo "RESULT mode=$mode rate=$rate ERROR=prepare (see $w)"; R_PASS=0; return; }
  start_server "$mode" "$w" || { echo "RESULT mode=$mode rate=$rate ERROR=start (see $w/server.out)"; R_PASS=0; return; }
  set +e
  timeout -k 5 $((secs + 20)) ip netns exec "$NS_CLI" $(pin "$CLIENT_CPU") \
    perfdhcp -4 -l qcli0 -r "$rate" -p "$secs" -R "$CLIENTS" -b mac=02:00:00:00:00:00 -W 1000000 198.18.0.1 >"$w/perfdhcp.out" 2>&1
  set -e
  stop_server
  line=$(awk -v mode="$mode" -v rate="$rate" -v secs="$secs" -v maxdrop="$MAXDROP" '
    /Statistics for: DISCOVER-OFFER/ { sec="DO" }
    /Statistics for: REQUEST-ACK/    { sec="RA" }
    /^sent packets:/     { sent[sec]=$3 }
    /^received packets:/ { rcvd[sec]=$3 }
    END {
      if (sent["DO"] == "") { printf "RESULT mode=%s rate=%d ERROR=no-perfdhcp-stats FAIL\n", mode, rate; exit }
      acked = rcvd["RA"]+0
      fail = sent["DO"] > 0 ? 100*(sent["DO"]-acked)/sent["DO"] : 100
      pass = (fail <= maxdrop && sent["DO"] >= 0.97*rate*secs) ? "PASS" : "FAIL"
      printf "RESULT mode=%s target=%d/s achieved=%.0f/s failed=%.2f%% acked=%d %s\n", mode, rate, acked/secs, fail, acked, pass
    }' "$w/perfdhcp.out")
  echo "$line"
  R_PASS=0; if [[ "$line" == *" PASS" ]]; then R_PASS=1; fi
}

max_rate() {   # max_rate MODE -> sets MAX
  local mode=$1 lo=0 hi=0 rate=$START_RATE start; start=$(date +%s)
  while [ $(( $(date +%s) - start )) -lt "$BUDGET" ]; do
    run_once "$mode" "$rate" "$PROBE_SECS"
    if [ "$R_PASS" = 0 ] && [ "$hi" = 0 ] && [ "$lo" = 0 ]; then run_once "$mode" "$rate" "$PROBE_SECS"; fi
    if [ "$R_PASS" = 1 ]; then
      lo=$rate
      if [ "$hi" = 0 ]; then [ "$rate" -ge "$MAX_RATE" ] && break; rate=$((rate * 2)); [ "$rate" -gt "$MAX_RATE" ] && rate=$MAX_RATE; continue; fi
    else hi=$rate; fi
    [ "$hi" != 0 ] || break
    [ $(( (hi - lo) * 100 )) -le $(( 5 * hi )) ] && break
    rate=$(( (lo + hi) / 2 )); [ "$rate" -ge 50 ] || break
  done
  MAX=$lo
}

if [ "${1:-max}" = rate ]; then
  for m in $MODES; do run_once "$m" "${2:-1000}" "${3:-10}"; done; exit 0
fi

declare -A RESULT
for m in $MODES; do
  log "mode $m: max sustained rate (failed exchanges <= $MAXDROP%)"
  max_rate "$m"; RESULT[$m]=$MAX
done
echo "SUMMARY (DORA/s sustained with <= $MAXDROP% failed; perfdhcp, $(nproc) cores, DB on the same machine)"
for m in $MODES; do printf "  %-9s %s\n" "$m" "${RESULT[$m]}"; done
echo "  Kea's published multi-threaded figures (bigger hardware): ~10k leases/s MySQL, ~7.4k PostgreSQL."
echo "  runs: $RUN"
