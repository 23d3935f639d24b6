#!/usr/bin/env bash
# bench/compare.sh -- leased vs Kea (kea-dhcp4, memfile), same namespaces, same machine, one run.
#
#   sudo bench/compare.sh                 # max sustained DORA/s (<1% failed) + CPU per DORA at FIXED_RATE
#   sudo bench/compare.sh rate 3000 10    # one run of each server at 3000 DORA/s for 10 s
#
# Everything runs inside two network namespaces this script creates (lbench-srv, lbench-cli), joined
# by a veth pair; every address is in 198.18.0.0/15 (RFC 2544). perfdhcp acts as a relay agent
# (giaddr 198.18.0.2), so both servers answer relayed traffic. Servers are pinned to CPU 0 and
# perfdhcp to CPU 1. Every load loop is bounded by perfdhcp's -p (seconds) and a timeout; processes
# are stopped by PID; namespaces are removed on exit.
#
# Output: one RESULT line per run, then a SUMMARY block with both maxima, their ratio, and CPU
# milliseconds per DORA at FIXED_RATE for each server (server CPU from /proc/PID/stat utime+stime).
#
# Environment: LEASED (binary, default target/release/leased), CLIENTS (50000), PROBE_SECS (10),
# FIXED_RATE (3000), FIXED_SECS (10), START_RATE (1000), MAX_RATE (24000), BUDGET (300 s per server),
# MAXDROP (1 = %), SERVER_CPU (0), CLIENT_CPU (1), KEA_SEVERITY (INFO: Kea logs each lease as leased does),
# HIGH_RATE (16000: the second CPU-per-DORA point).
#
# Also printed: leased's reply latency p50/p99 at half its max (from its own histogram), the
# overload curve (offered 0.5x, 1x, 2x, 4x of each server's max -> completed DORA/s), and each
# server's idle RSS. The 1M-lease rows (RSS, start-up, import) are bench/scale.sh's.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/compare.sh builds network namespaces: run it as root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
: "${LEASED:=$HERE/../target/release/leased}" "${CLIENTS:=50000}" "${PROBE_SECS:=10}" "${FIXED_RATE:=3000}"
: "${FIXED_SECS:=10}" "${START_RATE:=1000}" "${MAX_RATE:=24000}" "${BUDGET:=300}" "${MAXDROP:=1}"
: "${SERVER_CPU=0}" "${CLIENT_CPU=1}" "${KEA_SEVERITY:=INFO}" "${HIGH_RATE:=16000}"
for b in perfdhcp kea-dhcp4 ip taskset; do command -v "$b" >/dev/null || { echo "missing $b (sudo bash .ci/run installs the peers)" >&2; exit 1; }; done
[ -x "$LEASED" ] || { echo "no leased binary at $LEASED: cargo build --release" >&2; exit 1; }

NS_SRV=lbench-srv NS_CLI=lbench-cli
RUN=$(mktemp -d /tmp/leased-bench.XXXXXX); chmod 755 "$RUN"
SERVER_PID=
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
pin() { [ -n "$1" ] && echo "taskset -c $1"; }

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
cleanup() { set +e; stop_server; ip netns del "$NS_CLI" 2>/dev/null; ip netns del "$NS_SRV" 2>/dev/null; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cleanup
ip netns add "$NS_SRV"; ip netns add "$NS_CLI"
for ns in "$NS_SRV" "$NS_CLI"; do
  nsx "$ns" ip link set lo up
  nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
done
ip link add bcli0 netns "$NS_CLI" type veth peer name bsrv0 netns "$NS_SRV"
nsx "$NS_SRV" ip addr add 198.18.0.1/15 dev bsrv0
nsx "$NS_CLI" ip addr add 198.18.0.2/15 dev bcli0
nsx "$NS_SRV" ip link set bsrv0 up; nsx "$NS_CLI" ip link set bcli0 up
# perfdhcp's receive buffer overflows first at high rates (netlab README)
nsx "$NS_CLI" sysctl -qw net.core.rmem_default=8388608 net.core.rmem_max=8388608 2>/dev/null || sysctl -qw net.core.rmem_default=8388608 || true

write_configs() {   # $1 = work dir
  cat > "$1/kea.json" <<JSON
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ "bsrv0" ], "dhcp-socket-type": "raw" },
    "lease-database": { "type": "memfile", "persist": true, "name": "$1/kea-leases4.csv", "lfc-interval": 0 },
    "multi-threading": { "enable-multi-threading": false },
    "valid-lifetime": 3600, "renew-timer": 900, "rebind-timer": 1800,
    "subnet4": [ { "id": 1, "subnet": "198.18.0.0/15",
        "pools": [ { "pool": "198.19.0.1 - 198.19.255.254" } ],
        "option-data": [ { "name": "routers", "data": "198.18.0.1" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$1/kea.log" } ], "severity": "$KEA_SEVERITY" } ] } }
JSON
  cat > "$1/leased.toml" <<TOML
[server]
lease_time = 3600
renewal_time = 900
rebinding_time = 1800
[store]
path = "$1/leased.leases"
[logging]
level = "info"
[api]
listen = "127.0.0.1:8067"
keys = ["bench-compare-api-key-0123456789abcdef"]
[[subnets]]
network = "198.18.0.0/15"
interface = "bsrv0"
routers = ["198.18.0.1"]
pools = ["198.19.0.1-198.19.255.254"]
TOML
}

start_server() {   # $1 = kea|leased, $2 = work dir
  local w=$2
  case "$1" in
    kea) KEA_PIDFILE_DIR=$w KEA_LOCKFILE_DIR=$w setsid ip netns exec "$NS_SRV" $(pin "$SERVER_CPU") kea-dhcp4 -c "$w/kea.json" >"$w/server.out" 2>&1 & ;;
    leased) setsid ip netns exec "$NS_SRV" $(pin "$SERVER_CPU") "$LEASED" serve -c "$w/leased.toml" >"$w/server.out" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -5 "$w/server.out" >&2; return 1; }
    nsx "$NS_SRV" ss -Hulnp 'sport = :67' 2>/dev/null | grep -q "pid=" && { sleep 0.5; return 0; }
    sleep 0.1
  done
  return 1
}

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# p50 and p99 reply latency (ms, the upper bound of the histogram bucket that holds them) from
# leased's /metrics: request received -> reply handed to the kernel, every OFFER and ACK.
percentiles() {
  awk -F'[{}" ]+' '
    function ms(x) { return x == "+Inf" ? "inf" : x * 1000 }
    /^leased_reply_latency_seconds_bucket/ { le[n] = $3; c[n] = $NF; n++ }
    END {
      if (n == 0) { print "- -"; exit }
      total = c[n-1]; p50 = ""; p99 = ""
      for (i = 0; i < n; i++) {
        if (p50 == "" && c[i] >= 0.5 * total) p50 = le[i]
        if (p99 == "" && c[i] >= 0.99 * total) p99 = le[i]
      }
      printf "%s %s\n", ms(p50), ms(p99)
    }' "$1" 2>/dev/null || echo "- -"
}

# idle_rss NAME -> VmRSS (KiB) of the server 3 s after it started, no traffic
idle_rss() {
  local name=$1 w
  w="$RUN/$name-idle-$(date +%s%N)"; mkdir -p "$w"; write_configs "$w"
  start_server "$name" "$w" || { echo 0; return; }
  sleep 3
  awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0
  stop_server
}

# run_once NAME RATE SECS -> RESULT line on stdout; sets R_PASS R_ACH R_CPU_MS_PER_DORA
run_once() {
  local name=$1 rate=$2 secs=$3 w c0 c1 hz
  w="$RUN/$name-r$rate-$(date +%s%N)"; mkdir -p "$w"; write_configs "$w"
  start_server "$name" "$w" || { echo "RESULT server=$name rate=$rate ERROR=start"; R_PASS=0; return; }
  c0=$(cpu_ticks "$SERVER_PID")
  set +e
  timeout -k 5 $((secs + 20)) ip netns exec "$NS_CLI" $(pin "$CLIENT_CPU") \
    perfdhcp -4 -l bcli0 -r "$rate" -p "$secs" -R "$CLIENTS" -W 1000000 198.18.0.1 >"$w/perfdhcp.out" 2>&1
  set -e
  c1=$(cpu_ticks "$SERVER_PID"); hz=$(getconf CLK_TCK)
  R_P50=-; R_P99=-
  if [ "$name" = leased ]; then
    nsx "$NS_SRV" curl -s -H "X-Api-Key: bench-compare-api-key-0123456789abcdef" http://127.0.0.1:8067/metrics > "$w/metrics" 2>/dev/null || true
    read -r R_P50 R_P99 < <(percentiles "$w/metrics")
  fi
  stop_server
  local line
  line=$(awk -v name="$name" -v rate="$rate" -v secs="$secs" -v maxdrop="$MAXDROP" -v c0="$c0" -v c1="$c1" -v hz="$hz" '
    /Statistics for: DISCOVER-OFFER/ { sec="DO" }
    /Statistics for: REQUEST-ACK/    { sec="RA" }
    /^sent packets:/     { sent[sec]=$3 }
    /^received packets:/ { rcvd[sec]=$3 }
    END {
      if (sent["DO"] == "") { printf "RESULT server=%s rate=%d ERROR=no-perfdhcp-stats FAIL\n", name, rate; exit }
      acked = rcvd["RA"]+0
      fail = sent["DO"] > 0 ? 100*(sent["DO"]-acked)/sent["DO"] : 100
      cpu_ms = 1000*(c1-c0)/hz
      per = acked > 0 ? cpu_ms/acked : 0
      pass = (fail <= maxdrop && sent["DO"] >= 0.97*rate*secs) ? "PASS" : "FAIL"
      printf "RESULT server=%s target=%d/s achieved=%.0f/s failed=%.2f%% acked=%d server_cpu_ms=%.0f cpu_ms_per_dora=%.4f %s\n", name, rate, acked/secs, fail, acked, cpu_ms, per, pass
    }' "$w/perfdhcp.out")
  [ "$name" = leased ] && line="$line server_p50_ms=$R_P50 server_p99_ms=$R_P99"
  echo "$line"
  R_PASS=0; [[ "$line" == *" PASS" ]] && R_PASS=1
  R_ACH=$(sed -n 's/.* achieved=\([0-9]*\).*/\1/p' <<<"$line")
  R_CPU=$(sed -n 's/.* cpu_ms_per_dora=\([0-9.]*\).*/\1/p' <<<"$line")
}

max_rate() {   # max_rate NAME -> sets MAX
  local name=$1 lo=0 hi=0 rate=$START_RATE start; start=$(date +%s)
  while [ $(( $(date +%s) - start )) -lt "$BUDGET" ]; do
    run_once "$name" "$rate" "$PROBE_SECS"
    if [ "$R_PASS" = 0 ]; then log "$name failed at $rate, repeating once"; run_once "$name" "$rate" "$PROBE_SECS"; fi
    if [ "$R_PASS" = 1 ]; then
      lo=$rate
      if [ "$hi" = 0 ]; then [ "$rate" -ge "$MAX_RATE" ] && break; rate=$((rate * 2)); [ "$rate" -gt "$MAX_RATE" ] && rate=$MAX_RATE; continue; fi
    else hi=$rate; fi
    [ "$hi" != 0 ] || break
    [ $(( (hi - lo) * 100 )) -le $(( 5 * hi )) ] && break
    rate=$(( (lo + hi) / 2 )); [ "$rate" -ge 100 ] || break
  done
  MAX=$lo
}

if [ "${1:-max}" = rate ]; then
  run_once kea "${2:-3000}" "${3:-10}"; run_once leased "${2:-3000}" "${3:-10}"; exit 0
fi

log "CPU per DORA at $FIXED_RATE/s for ${FIXED_SECS}s"
run_once kea "$FIXED_RATE" "$FIXED_SECS"; KEA_CPU=$R_CPU; KEA_FIXED_OK=$R_PASS
run_once leased "$FIXED_RATE" "$FIXED_SECS"; LEASED_CPU=$R_CPU; LEASED_FIXED_OK=$R_PASS
log "max sustained rate search (failed exchanges <= $MAXDROP%)"
max_rate kea; KEA_MAX=$MAX
max_rate leased; LEASED_MAX=$MAX
log "CPU per DORA at HIGH_RATE=${HIGH_RATE}/s"
run_once kea "$HIGH_RATE" "$FIXED_SECS"; KEA_HIGH=$R_CPU; KEA_HIGH_ACH=$R_ACH
run_once leased "$HIGH_RATE" "$FIXED_SECS"; LEASED_HIGH=$R_CPU; LEASED_HIGH_ACH=$R_ACH
log "latency at half the max (leased's reply-latency histogram; perfdhcp's avg/max delays are in its output)"
run_once leased $((LEASED_MAX / 2)) "$FIXED_SECS"; LAT="p50 ${R_P50} ms, p99 ${R_P99} ms at $((LEASED_MAX / 2))/s"
log "overload curve: offered 0.5x, 1x, 2x, 4x of each server's max"
CURVE=""
for name in kea leased; do
  m=$KEA_MAX; [ "$name" = leased ] && m=$LEASED_MAX
  [ "$m" -gt 0 ] || continue
  for f in 0.5 1 2 4; do
    r=$(awk -v m="$m" -v f="$f" 'BEGIN { printf "%d", m*f }')
    run_once "$name" "$r" "$PROBE_SECS"
    CURVE="$CURVE    $name offered ${r}/s (${f}x) -> completed ${R_ACH}/s ($(awk -v a="$R_ACH" -v m="$m" 'BEGIN { printf "%.0f", 100*a/m }') % of its max)\n"
  done
done
log "idle RSS"
KEA_RSS=$(idle_rss kea); LEASED_RSS=$(idle_rss leased)
echo "SUMMARY"
echo "  kea-dhcp4 (memfile, single-threaded, logging $KEA_SEVERITY): max ${KEA_MAX}/s, ${KEA_CPU} ms CPU per DORA at ${FIXED_RATE}/s (pass=$KEA_FIXED_OK)"
echo "  leased (embedded store, fsync before ACK):           max ${LEASED_MAX}/s, ${LEASED_CPU} ms CPU per DORA at ${FIXED_RATE}/s (pass=$LEASED_FIXED_OK)"
awk -v a="$LEASED_MAX" -v b="$KEA_MAX" -v c="$LEASED_CPU" -v d="$KEA_CPU" 'BEGIN {
  if (b > 0) printf "  max rate ratio leased/kea: %.2f\n", a/b
  if (d > 0) printf "  CPU per DORA ratio leased/kea: %.2f (goal: <= 0.33)\n", c/d
  print "  note: one perfdhcp tops out near 12k DORA/s here; a max at or above that is perfdhcp-limited."
}'
echo "  CPU per DORA at ${HIGH_RATE}/s: kea ${KEA_HIGH} ms (achieved ${KEA_HIGH_ACH}/s), leased ${LEASED_HIGH} ms (achieved ${LEASED_HIGH_ACH}/s)"
echo "  leased reply latency at half its max: $LAT"
echo "  idle RSS (3 s after start, no traffic): kea $((KEA_RSS / 1024)) MiB, leased serve $((LEASED_RSS / 1024)) MiB (with its [api])"
printf "  overload curve:\n$CURVE"
echo "  runs: $RUN"
