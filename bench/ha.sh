#!/usr/bin/env bash
# bench/ha.sh -- leased standalone vs hot-standby vs load-balancing, and Kea 2.2's HA hook beside
# them, same namespaces, same machine, one run.
#
#   sudo bench/ha.sh                    # CPU per DORA at FIXED_RATE + max sustained DORA/s, every mode
#   sudo bench/ha.sh rate 2000 10       # one run of every mode at 2000 DORA/s for 10 s
#
# Topology (namespaces this script creates; every address in 198.18.0.0/15, RFC 2544): a hub
# namespace holds a bridge with the LAN ports of server A (198.18.0.1/16) and server B
# (198.18.0.2/16) and perfdhcp's own address (198.18.0.3/16); the partner link is a separate veth
# pair (198.19.255.1/30 - .2). perfdhcp broadcasts as a relay agent (giaddr 198.18.0.3), so both
# servers of a pair see every request. Both servers are pinned to CPU 0 and perfdhcp to CPU 1:
# on this 2-core machine a pair shares one core, so a pair's cost shows as a lower maximum.
# Every load loop is bounded by perfdhcp's -p and a timeout; processes are stopped by PID;
# namespaces are removed on exit.
#
# Output: a RESULT line per run and a SUMMARY: max DORA/s (<= MAXDROP % failed) and CPU ms per
# DORA (both servers' utime+stime over acknowledged exchanges) at FIXED_RATE, for leased
# standalone, hot-standby and load-balancing, and for Kea (memfile) standalone and hot-standby
# with libdhcp_ha.so (multi-threaded, its dedicated HTTP listener) when it starts here.
#
# Environment: LEASED (target/release/leased), CLIENTS (50000), PROBE_SECS (10), FIXED_RATE
# (1000), FIXED_SECS (10), START_RATE (1000), MAX_RATE (16000), BUDGET (150 s per mode), MAXDROP
# (1 = %), SERVER_CPU (0), CLIENT_CPU (1), KEA (1: also measure Kea).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/ha.sh builds network namespaces: run it as root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
: "${LEASED:=$HERE/../target/release/leased}" "${CLIENTS:=50000}" "${PROBE_SECS:=10}" "${FIXED_RATE:=1000}"
: "${FIXED_SECS:=10}" "${START_RATE:=1000}" "${MAX_RATE:=16000}" "${BUDGET:=150}" "${MAXDROP:=1}"
: "${SERVER_CPU=0}" "${CLIENT_CPU=1}" "${KEA:=1}"
for b in perfdhcp ip taskset; do command -v "$b" >/dev/null || { echo "missing $b (sudo bash .ci/run installs the peers)" >&2; exit 1; }; done
[ -x "$LEASED" ] || { echo "no leased binary at $LEASED: cargo build --release" >&2; exit 1; }
KEA_HOOKS=$(dirname "$(ls /usr/lib/*/kea/hooks/libdhcp_ha.so /usr/lib/kea/hooks/libdhcp_ha.so 2>/dev/null | head -1 || true)")

NS_A=lbha-a NS_B=lbha-b NS_C=lbha-c
RUN=$(mktemp -d /tmp/leased-bench-ha.XXXXXX); chmod 755 "$RUN"
PIDS=()
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
pin() { [ -n "$1" ] && echo "taskset -c $1"; }

stop_servers() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() { set +e; stop_servers; for ns in "$NS_A" "$NS_B" "$NS_C"; do ip netns del "$ns" 2>/dev/null; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cleanup
for ns in "$NS_A" "$NS_B" "$NS_C"; do
  ip netns add "$ns"
  nsx "$ns" ip link set lo up
  nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
done
nsx "$NS_C" ip link add br0 type bridge
ip link add lan0 netns "$NS_A" type veth peer name pa netns "$NS_C"
ip link add lan0 netns "$NS_B" type veth peer name pb netns "$NS_C"
for p in pa pb; do nsx "$NS_C" ip link set "$p" master br0; nsx "$NS_C" ip link set "$p" up; done
nsx "$NS_C" ip addr add 198.18.0.3/16 dev br0; nsx "$NS_C" ip link set br0 up
nsx "$NS_A" ip addr add 198.18.0.1/16 dev lan0; nsx "$NS_A" ip link set lan0 up
nsx "$NS_B" ip addr add 198.18.0.2/16 dev lan0; nsx "$NS_B" ip link set lan0 up
ip link add ha0 netns "$NS_A" type veth peer name ha0 netns "$NS_B"
nsx "$NS_A" ip addr add 198.19.255.1/30 dev ha0; nsx "$NS_A" ip link set ha0 up
nsx "$NS_B" ip addr add 198.19.255.2/30 dev ha0; nsx "$NS_B" ip link set ha0 up
nsx "$NS_C" sysctl -qw net.core.rmem_default=8388608 net.core.rmem_max=8388608 2>/dev/null || sysctl -qw net.core.rmem_default=8388608 || true

leased_config() {   # dir me(a|b) mode(standalone|hot-standby|load-balancing)
  local w=$1 me=$2 mode=$3 id=1 second=standby
  [ "$me" = b ] && id=2
  [ "$mode" = load-balancing ] && second=secondary
  cat > "$w/$me.toml" <<TOML
[server]
lease_time = 3600
renewal_time = 900
rebinding_time = 1800
[store]
path = "$w/$me.leases"
[logging]
level = "info"
[api]
listen = "127.0.0.1:8067"
keys = ["bench-ha-api-key-0123456789abcdef0123"]
[[subnets]]
network = "198.18.0.0/16"
interface = "lan0"
server_id = "198.18.0.$id"
routers = ["198.18.0.1"]
pools = ["198.18.1.1-198.18.254.254"]
TOML
  [ "$mode" = standalone ] && return 0
  cat >> "$w/$me.toml" <<TOML
[ha]
mode = "$mode"
this_server = "$me"
shared_key = "bench shared key of 32 bytes!!!!"
[[ha.peers]]
name = "a"
url = "198.19.255.1:8647"
role = "primary"
[[ha.peers]]
name = "b"
url = "198.19.255.2:8647"
role = "$second"
TOML
}

kea_config() {   # dir me(a|b) mode(standalone|hot-standby)
  local w=$1 me=$2 mode=$3 id=1
  [ "$me" = b ] && id=2
  local hooks="" mt=false
  if [ "$mode" != standalone ]; then
    mt=true
    hooks=$(cat <<JSON
    "hooks-libraries": [
      { "library": "$KEA_HOOKS/libdhcp_lease_cmds.so" },
      { "library": "$KEA_HOOKS/libdhcp_ha.so", "parameters": { "high-availability": [ {
          "this-server-name": "$me", "mode": "$mode",
          "heartbeat-delay": 1000, "max-response-delay": 60000, "max-ack-delay": 10000, "max-unacked-clients": 10,
          "multi-threading": { "enable-multi-threading": true, "http-dedicated-listener": true,
                               "http-listener-threads": 0, "http-client-threads": 0 },
          "peers": [
            { "name": "a", "url": "http://198.19.255.1:8001/", "role": "primary", "auto-failover": true },
            { "name": "b", "url": "http://198.19.255.2:8001/", "role": "standby", "auto-failover": true } ] } ] } } ],
JSON
)
  fi
  cat > "$w/$me.json" <<JSON
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ "lan0" ], "dhcp-socket-type": "raw" },
    "lease-database": { "type": "memfile", "persist": true, "name": "$w/$me-leases4.csv", "lfc-interval": 0 },
    "multi-threading": { "enable-multi-threading": $mt },
    "valid-lifetime": 3600, "renew-timer": 900, "rebind-timer": 1800,
    "server-tag": "$me",
$hooks
    "subnet4": [ { "id": 1, "subnet": "198.18.0.0/16",
        "pools": [ { "pool": "198.18.1.1 - 198.18.254.254" } ],
        "option-data": [ { "name": "routers", "data": "198.18.0.1" }, { "name": "dhcp-server-identifier", "data": "198.18.0.$id" } ] } ],
    "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$w/$me-kea.log" } ], "severity": "INFO" } ] } }
JSON
}

start_one() {   # server(leased|kea) dir me ns
  local server=$1 w=$2 me=$3 ns=$4
  case "$server" in
    leased) setsid ip netns exec "$ns" $(pin "$SERVER_CPU") "$LEASED" serve -c "$w/$me.toml" >"$w/$me.out" 2>&1 & ;;
    kea) KEA_PIDFILE_DIR=$w/$me KEA_LOCKFILE_DIR=$w/$me setsid ip netns exec "$ns" $(pin "$SERVER_CPU") kea-dhcp4 -c "$w/$me.json" >"$w/$me.out" 2>&1 & ;;
  esac
  PIDS+=($!)
}

# The pair is ready: leased says so through `leased ha status`; Kea through its log.
wait_ready() {   # server dir mode
  local server=$1 w=$2 mode=$3 want=$3
  for _ in $(seq 600); do
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || { tail -5 "$w"/*.out >&2; return 1; }; done
    if [ "$mode" = standalone ]; then
      nsx "$NS_A" ss -Hulnp 'sport = :67' 2>/dev/null | grep -q "pid=" && { sleep 0.5; return 0; }
    elif [ "$server" = leased ]; then
      a=$(nsx "$NS_A" "$LEASED" ha status -c "$w/a.toml" --json 2>/dev/null | sed -n 's/.*"state": "\([a-z-]*\)".*/\1/p' | head -1)
      b=$(nsx "$NS_B" "$LEASED" ha status -c "$w/b.toml" --json 2>/dev/null | sed -n 's/.*"state": "\([a-z-]*\)".*/\1/p' | head -1)
      [ "$a" = "$want" ] && [ "$b" = "$want" ] && { sleep 0.5; return 0; }
    else
      grep -q 'HA_STATE_TRANSITION.*to HOT-STANDBY state' "$w/a-kea.log" 2>/dev/null \
        && grep -q 'HA_STATE_TRANSITION.*to HOT-STANDBY state' "$w/b-kea.log" 2>/dev/null && { sleep 0.5; return 0; }
    fi
    sleep 0.1
  done
  return 1
}

cpu_ticks() { local t=0 p; for p in "${PIDS[@]}"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }

# run_once SERVER MODE RATE SECS -> RESULT line; sets R_PASS R_ACH R_CPU
run_once() {
  local server=$1 mode=$2 rate=$3 secs=$4 w c0 c1 hz
  w="$RUN/$server-$mode-r$rate-$(date +%s%N)"; mkdir -p "$w/a" "$w/b"
  if [ "$server" = leased ]; then
    leased_config "$w" a "$mode"; [ "$mode" = standalone ] || leased_config "$w" b "$mode"
  else
    kea_config "$w" a "$mode"; [ "$mode" = standalone ] || kea_config "$w" b "$mode"
  fi
  [ "$mode" = standalone ] || start_one "$server" "$w" b "$NS_B"
  start_one "$server" "$w" a "$NS_A"
  wait_ready "$server" "$w" "$mode" || { stop_servers; echo "RESULT server=$server mode=$mode rate=$rate ERROR=start"; R_PASS=0; R_ACH=0; R_CPU=0; return; }
  c0=$(cpu_ticks)
  set +e
  timeout -k 5 $((secs + 20)) ip netns exec "$NS_C" $(pin "$CLIENT_CPU") \
    perfdhcp -4 -l br0 -r "$rate" -p "$secs" -R "$CLIENTS" -W 1000000 all >"$w/perfdhcp.out" 2>&1
  set -e
  c1=$(cpu_ticks); hz=$(getconf CLK_TCK)
  stop_servers
  local line
  line=$(awk -v name="$server" -v mode="$mode" -v rate="$rate" -v secs="$secs" -v maxdrop="$MAXDROP" -v c0="$c0" -v c1="$c1" -v hz="$hz" '
    /Statistics for: DISCOVER-OFFER/ { sec="DO" }
    /Statistics for: REQUEST-ACK/    { sec="RA" }
    /^sent packets:/     { sent[sec]=$3 }
    /^received packets:/ { rcvd[sec]=$3 }
    END {
      if (sent["DO"] == "") { printf "RESULT server=%s mode=%s rate=%d ERROR=no-perfdhcp-stats FAIL\n", name, mode, rate; exit }
      acked = rcvd["RA"]+0
      fail = sent["DO"] > 0 ? 100*(sent["DO"]-acked)/sent["DO"] : 100
      cpu_ms = 1000*(c1-c0)/hz
      per = acked > 0 ? cpu_ms/acked : 0
      pass = (fail <= maxdrop && sent["DO"] >= 0.97*rate*secs) ? "PASS" : "FAIL"
      printf "RESULT server=%s mode=%s target=%d/s achieved=%.0f/s failed=%.2f%% acked=%d servers_cpu_ms=%.0f cpu_ms_per_dora=%.4f %s\n", name, mode, rate, acked/secs, fail, acked, cpu_ms, per, pass
    }' "$w/perfdhcp.out")
  echo "$line"
  R_PASS=0; [[ "$line" == *" PASS" ]] && R_PASS=1
  R_ACH=$(sed -n 's/.* achieved=\([0-9]*\).*/\1/p' <<<"$line"); R_ACH=${R_ACH:-0}
  R_CPU=$(sed -n 's/.* cpu_ms_per_dora=\([0-9.]*\).*/\1/p' <<<"$line"); R_CPU=${R_CPU:-0}
}

max_rate() {   # SERVER MODE -> sets MAX
  local server=$1 mode=$2 lo=0 hi=0 rate=$START_RATE start; start=$(date +%s)
  while [ $(( $(date +%s) - start )) -lt "$BUDGET" ]; do
    run_once "$server" "$mode" "$rate" "$PROBE_SECS"
    if [ "$R_PASS" = 1 ]; then
      lo=$rate
      if [ "$hi" = 0 ]; then [ "$rate" -ge "$MAX_RATE" ] && break; rate=$((rate * 2)); [ "$rate" -gt "$MAX_RATE" ] && rate=$MAX_RATE; continue; fi
    else hi=$rate; fi
    [ "$hi" != 0 ] || break
    [ $(( (hi - lo) * 100 )) -le $(( 10 * hi )) ] && break
    rate=$(( (lo + hi) / 2 )); [ "$rate" -ge 100 ] || break
  done
  MAX=$lo
}

MODES=(standalone hot-standby load-balancing)
KEA_MODES=()
if [ "$KEA" = 1 ] && command -v kea-dhcp4 >/dev/null; then
  if [ -f "$KEA_HOOKS/libdhcp_ha.so" ]; then KEA_MODES=(standalone hot-standby); else KEA_MODES=(standalone); log "no libdhcp_ha.so in kea-dhcp4-server: Kea HA not measured"; fi
fi

if [ "${1:-max}" = rate ]; then
  for m in "${MODES[@]}"; do run_once leased "$m" "${2:-1000}" "${3:-10}"; done
  for m in "${KEA_MODES[@]}"; do run_once kea "$m" "${2:-1000}" "${3:-10}"; done
  exit 0
fi

declare -A CPU MAXR OK
for m in "${MODES[@]}"; do
  log "leased $m: CPU per DORA at $FIXED_RATE/s"
  run_once leased "$m" "$FIXED_RATE" "$FIXED_SECS"; CPU[leased-$m]=$R_CPU; OK[leased-$m]=$R_PASS
  log "leased $m: max sustained rate"
  max_rate leased "$m"; MAXR[leased-$m]=$MAX
done
for m in "${KEA_MODES[@]}"; do
  log "kea $m: CPU per DORA at $FIXED_RATE/s"
  run_once kea "$m" "$FIXED_RATE" "$FIXED_SECS"; CPU[kea-$m]=$R_CPU; OK[kea-$m]=$R_PASS
  log "kea $m: max sustained rate"
  max_rate kea "$m"; MAXR[kea-$m]=$MAX
done
echo "SUMMARY (both servers of a pair on CPU $SERVER_CPU, perfdhcp on CPU $CLIENT_CPU)"
for k in "${!MAXR[@]}"; do
  printf "  %-26s max %6s DORA/s   %s ms CPU per DORA at %s/s (pass=%s)\n" "$k" "${MAXR[$k]}" "${CPU[$k]}" "$FIXED_RATE" "${OK[$k]}"
done | sort
awk -v s="${MAXR[leased-standalone]:-0}" -v h="${MAXR[leased-hot-standby]:-0}" -v l="${MAXR[leased-load-balancing]:-0}" 'BEGIN {
  if (s > 0) printf "  leased hot-standby / standalone: %.0f %% (goal >= 50 %%; Kea publishes 48 %%)\n  leased load-balancing / standalone: %.0f %%\n", 100*h/s, 100*l/s
}'
if [ -n "${MAXR[kea-standalone]:-}" ] && [ -n "${MAXR[kea-hot-standby]:-}" ] && [ "${MAXR[kea-standalone]}" -gt 0 ]; then
  awk -v s="${MAXR[kea-standalone]}" -v h="${MAXR[kea-hot-standby]}" 'BEGIN { printf "  kea hot-standby / standalone: %.0f %%\n", 100*h/s }'
fi
echo "  runs: $RUN"
