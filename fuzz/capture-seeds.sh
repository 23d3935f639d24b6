#!/usr/bin/env bash
# fuzz/capture-seeds.sh LEASED_BIN -- rebuild the committed packet seed corpus (fuzz/seeds/packets)
# from real traffic: leased serves in one network namespace, perfdhcp, dhclient and udhcpc ask
# from another, tcpdump records both directions and every DHCP payload becomes one corpus file.
#
# Root only. 198.18.200.0/24 only, in namespaces this script creates and deletes; every process
# is bounded by `timeout` and stopped by its PID.
set -euo pipefail
BIN=${1:?usage: capture-seeds.sh path/to/leased}
BIN=$(readlink -f "$BIN")
HERE=$(cd "$(dirname "$0")" && pwd)
OUT="$HERE/seeds/packets"
TAG="lfz$$"
SRV="$TAG-s"; CLI="$TAG-c"
WORK=$(mktemp -d)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$SRV"; ip netns add "$CLI"
ip link add "${TAG}a" type veth peer name "${TAG}b"
ip link set "${TAG}a" netns "$SRV"; ip link set "${TAG}b" netns "$CLI"
ip -n "$SRV" link set lo up; ip -n "$CLI" link set lo up
ip -n "$SRV" addr add 198.18.200.1/24 dev "${TAG}a"
ip -n "$SRV" link set "${TAG}a" up; ip -n "$CLI" link set "${TAG}b" up

cat > "$WORK/leased.toml" <<CFG
[server]
authoritative = true
lease_time = 120
[store]
path = "$WORK/leases.db"
[[subnets]]
network = "198.18.200.0/24"
interface = "${TAG}a"
routers = ["198.18.200.1"]
pools = ["198.18.200.100-198.18.200.250"]
[subnets.options]
dns = ["198.18.200.53"]
domain_name = "seed.test"
CFG

timeout 120 ip netns exec "$SRV" tcpdump -i "${TAG}a" -U -s 0 -c 2000 -w "$WORK/dhcp.pcap" \
  'udp port 67 or udp port 68' >/dev/null 2>&1 &
PIDS+=($!)
timeout 120 ip netns exec "$SRV" "$BIN" serve -c "$WORK/leased.toml" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
sleep 1.5

echo "== udhcpc"
timeout 20 ip netns exec "$CLI" udhcpc -i "${TAG}b" -n -q -f -t 3 -T 2 -s /bin/true \
  -x hostname:seedhost -V seed-vendor -O 42 -O 119 >/dev/null 2>&1 || echo "udhcpc failed"
# The clients' scripts are /bin/true: give the client side an address by hand, so that the
# unicast RELEASEs and perfdhcp (which needs an address on its interface) can send.
ip -n "$CLI" addr add 198.18.200.2/24 dev "${TAG}b"
echo "== udhcpc release"
timeout 20 ip netns exec "$CLI" udhcpc -i "${TAG}b" -n -q -f -t 3 -T 2 -s /bin/true -R \
  >/dev/null 2>&1 || echo "udhcpc -R failed"
echo "== dhclient"
timeout 25 ip netns exec "$CLI" dhclient -4 -1 -d -v -sf /bin/true -lf "$WORK/dhclient.leases" \
  -pf "$WORK/dhclient.pid" "${TAG}b" >/dev/null 2>&1 &
DHC=$!; PIDS+=("$DHC")
for _ in $(seq 1 40); do grep -q lease "$WORK/dhclient.leases" 2>/dev/null && break; sleep 0.25; done
kill "$DHC" 2>/dev/null || true
echo "== dhclient release"
timeout 15 ip netns exec "$CLI" dhclient -4 -r -v -sf /bin/true -lf "$WORK/dhclient.leases" \
  -pf "$WORK/dhclient2.pid" "${TAG}b" >/dev/null 2>&1 || echo "dhclient -r failed"
echo "== perfdhcp (broadcast flag; options 12/60/61 varying)"
timeout 20 ip netns exec "$CLI" perfdhcp -4 -l "${TAG}b" -r 20 -R 100 -n 20 -p 5 -B \
  -o 12,68656c6c6f -o 60,7065726664686370 >"$WORK/perfdhcp-b.log" 2>&1 || true
echo "== perfdhcp"
timeout 20 ip netns exec "$CLI" perfdhcp -4 -l "${TAG}b" -r 20 -R 100 -n 40 -p 5 \
  >"$WORK/perfdhcp.log" 2>&1 || echo "perfdhcp ended non-zero (lost exchanges are fine here)"
sleep 1

kill "${PIDS[0]}" 2>/dev/null || true
wait "${PIDS[0]}" 2>/dev/null || true

mkdir -p "$OUT"
rm -f "$OUT"/*
n=0
# One file per distinct DHCP payload, named after its sender and message type.
tshark -r "$WORK/dhcp.pcap" -Y dhcp -T fields -E separator=, -e dhcp.option.dhcp -e udp.payload 2>/dev/null \
  | sort -u -t, -k2,2 | while IFS=, read -r mtype hex; do
      [ -n "$hex" ] || continue
      sum=$(printf '%s' "$hex" | sha1sum | cut -c1-12)
      printf '%s' "$hex" | xxd -r -p > "$OUT/type${mtype:-x}-$sum"
    done
n=$(ls "$OUT" | wc -l)
echo "== $n seed packets in $OUT"
