#!/usr/bin/env bash
# bench/scale.sh -- `leased import isc` of a million-lease dhcpd.leases: time and peak memory,
# then how long `leased serve` takes to load the imported store and how much memory it holds.
#
#   sudo bench/scale.sh                 # 1,000,000 active leases
#   LEASES=200000 sudo bench/scale.sh   # a smaller run
#
# The fixture is generated here, relative to the current time (so every lease is active when
# imported): one subnet 10.16.0.0/12 (1,048,574 usable addresses; 198.18.0.0/15 holds only
# 131,072, too few for a million leases). Nothing is ever sent to these addresses: `leased serve`
# runs inside a network namespace this script creates, with only its loopback and a veth pair
# of its own (198.18.0.1/24), on test ports, and no client is started. Besides the LEASES active entries the file
# holds SUPERSEDED older entries for some of the same addresses (dhcpd appends an entry per
# change, so the last one wins), a few released ones and some Option 82 data, like a real file.
#
# Output: one RESULT line per measurement: import elapsed seconds and peak RSS (from
# /usr/bin/time -v), serve's time to its "loaded N leases" log line and to its listening UDP
# socket, and serve's RSS once loaded (VmRSS and VmHWM from /proc/PID/status).
#
# Environment: LEASED (binary, default target/release/leased), LEASES (1000000), SUPERSEDED
# (LEASES/10), SERVE_TIMEOUT (120 s), KEEP (1 = keep the temp dir).
# Every wait is bounded; the server is stopped by PID; the namespace and temp files are removed
# on exit.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/scale.sh builds a network namespace: run it as root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
: "${LEASED:=$HERE/../target/release/leased}" "${LEASES:=1000000}" "${SERVE_TIMEOUT:=120}" "${KEEP:=0}"
: "${SUPERSEDED:=$((LEASES / 10))}"
for b in python3 ip ss /usr/bin/time; do command -v "$b" >/dev/null || { echo "missing $b" >&2; exit 1; }; done
[ -x "$LEASED" ] || { echo "no leased binary at $LEASED: cargo build --release -p leased" >&2; exit 1; }
[ "$LEASES" -le 1048000 ] || { echo "LEASES must fit in 10.16.0.0/12 (at most 1048000)" >&2; exit 1; }

NS=lscale-$$
RUN=$(mktemp -d /tmp/leased-scale.XXXXXX)
SERVER_PID=
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
cleanup() {
  set +e
  stop_server
  ip netns del "$NS" 2>/dev/null
  if [ "$KEEP" = 1 ]; then log "kept $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "generating $LEASES active leases (+$SUPERSEDED superseded entries) in $RUN"
python3 - "$RUN" "$LEASES" "$SUPERSEDED" <<'PY'
import sys, time, random
run, n, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
now = int(time.time())
rnd = random.Random(42)
def isc(t):
    g = time.gmtime(t)
    return "%d %04d/%02d/%02d %02d:%02d:%02d" % ((g.tm_wday + 1) % 7, g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec)
base = (10 << 24) | (16 << 16)          # 10.16.0.0/12
def ip(i):
    a = base + 1 + i
    return "%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
def mac(i):
    return "02:%02x:%02x:%02x:%02x:%02x" % ((i >> 32) & 255, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255)
# A few hundred distinct times are enough and keep the generator fast.
starts = [isc(now - 60 * k) for k in range(1, 241)]
ends = [isc(now + 3600 * k) for k in range(1, 241)]
old_ends = [isc(now - 86400 - 60 * k) for k in range(1, 241)]
with open(run + "/dhcpd.conf", "w") as f:
    f.write('authoritative;\noption domain-name "scale.example";\noption domain-name-servers 198.18.0.53;\n'
            'default-lease-time 43200;\nmax-lease-time 86400;\n'
            'subnet 10.16.0.0 netmask 255.240.0.0 {\n  range 10.16.0.1 10.31.255.254;\n  option routers 10.16.0.1;\n}\n')
with open(run + "/dhcpd.leases", "w", buffering=1 << 20) as f:
    f.write("# The format of this file is documented in the dhcpd.leases(5) manual page.\n"
            "# This lease file was written by isc-dhcp-4.4.3 (bench/scale.sh)\n\n"
            "authoring-byte-order little-endian;\n\n")
    # Superseded entries first (older entries for addresses that appear again later).
    for k in range(extra):
        i = rnd.randrange(n)
        f.write("lease %s {\n  starts %s;\n  ends %s;\n  tstp %s;\n  cltt %s;\n  binding state free;\n"
                "  hardware ethernet %s;\n}\n" % (ip(i), old_ends[k % 240], old_ends[k % 240], old_ends[k % 240],
                                                  old_ends[k % 240], mac(i + 7)))
    out = []
    for i in range(n):
        s, e = starts[i % 240], ends[(i * 7) % 240]
        b = ["lease %s {\n  starts %s;\n  ends %s;\n  cltt %s;\n  binding state active;\n"
             "  next binding state free;\n  rewind binding state free;\n  hardware ethernet %s;\n"
             % (ip(i), s, e, s, mac(i))]
        if i % 3 == 0:
            b.append('  uid "\\001\\002\\%03o\\%03o\\%03o\\%03o\\%03o";\n'
                     % ((i >> 32) & 255, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255))
        if i % 5 == 0:
            b.append('  option agent.circuit-id "eth0/%d";\n  option agent.remote-id 0:1b:%02x:%02x:%02x:%02x;\n'
                     % (i % 48, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255))
        b.append('  set vendor-class-identifier = "MSFT 5.0";\n  client-hostname "host-%d";\n}\n' % i)
        out.append("".join(b))
        if len(out) >= 4096:
            f.write("".join(out)); out = []
    f.write("".join(out))
PY
log "fixture: $(du -h "$RUN/dhcpd.leases" | cut -f1) dhcpd.leases, $(grep -c '^lease ' "$RUN/dhcpd.leases") entries"

# Drop the fixture's pages from other measurements' way: read it once so both runs start warm.
cat "$RUN/dhcpd.leases" >/dev/null

log "leased import isc"
set +e
timeout 600 /usr/bin/time -v "$LEASED" import isc --conf "$RUN/dhcpd.conf" --leases "$RUN/dhcpd.leases" \
  --out "$RUN/leased.toml" --store "$RUN/leases.journal" >"$RUN/import.out" 2>"$RUN/import.err"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "import failed ($rc):" >&2; tail -20 "$RUN/import.err" >&2; exit 1
fi
cat "$RUN/import.out"
notes=$(grep -c '^note:' "$RUN/import.err" || true)
elapsed=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$RUN/import.err")
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$RUN/import.err")
user=$(sed -n 's/.*User time (seconds): //p' "$RUN/import.err")
sys=$(sed -n 's/.*System time (seconds): //p' "$RUN/import.err")
echo "RESULT import leases=$LEASES entries=$((LEASES + SUPERSEDED)) elapsed=$elapsed user_s=$user sys_s=$sys peak_rss_kib=$rss peak_rss_mib=$((rss / 1024)) notes=$notes journal_mib=$(( $(stat -c %s "$RUN/leases.journal") / 1048576 ))"

# `leased serve` on the imported store, inside a namespace of its own: loopback and a veth pair
# in 198.18.0.0/15, test ports, no client anywhere.
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip link add lsc0 type veth peer name lsc1
ip netns exec "$NS" ip addr add 198.18.0.1/24 dev lsc0
ip netns exec "$NS" ip link set lsc0 up
ip netns exec "$NS" ip link set lsc1 up
# The subnet is served as relayed through the veth's own 198.18.0.1: no address of it is on a link.
printf '\n[server]\ninterfaces = ["lsc0"]\n' >>"$RUN/leased.toml"
log "leased serve (namespace $NS)"
t0=$(date +%s.%N)
NO_COLOR=1 ip netns exec "$NS" "$LEASED" serve -c "$RUN/leased.toml" --port 10067 --client-port 10068 \
  >"$RUN/serve.log" 2>&1 &
SERVER_PID=$!
loaded= listening=
deadline=$(( $(date +%s) + SERVE_TIMEOUT ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "leased serve exited:" >&2; tail -20 "$RUN/serve.log" >&2; exit 1; }
  now=$(date +%s.%N)
  if [ -z "$loaded" ] && grep -q 'loaded [0-9]* leases' "$RUN/serve.log"; then loaded=$now; fi
  if [ -z "$listening" ] && ip netns exec "$NS" ss -Hulnp 'sport = :10067' | grep -q "pid=$SERVER_PID,"; then listening=$now; fi
  [ -n "$loaded" ] && [ -n "$listening" ] && break
  sleep 0.05
done
[ -n "$loaded" ] && [ -n "$listening" ] || { echo "leased serve not ready within ${SERVE_TIMEOUT}s:" >&2; tail -20 "$RUN/serve.log" >&2; exit 1; }
sleep 1
vmrss=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
vmhwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
count=$(sed -n 's/.*loaded \([0-9]*\) leases.*/\1/p' "$RUN/serve.log" | head -1)
echo "RESULT serve loaded=$count to_loaded_s=$(printf %.2f "$(echo "$loaded - $t0" | bc)") to_listening_s=$(printf %.2f "$(echo "$listening - $t0" | bc)") rss_after_load_kib=$vmrss rss_after_load_mib=$((vmrss / 1024)) peak_rss_kib=$vmhwm peak_rss_mib=$((vmhwm / 1024))"
stop_server
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; other processes using CPU:"
ps -eo pcpu,comm --sort=-pcpu | awk 'NR > 1 && $1 > 5 {printf "  %s%% %s\n", $1, $2}' | head -8
