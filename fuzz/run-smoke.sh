#!/usr/bin/env bash
# fuzz/run-smoke.sh SECONDS [TARGET...] -- run every fuzz target (or the ones named) for SECONDS
# each, on stable Rust (`--sanitizer none`), starting from the committed seeds in seeds/.
# Fails on the first crash, panic, timeout (10 s for one input) or out-of-memory; the input that
# did it is left in fuzz/artifacts/<target>/. Prints executions per target at the end.
set -euo pipefail
SECS=${1:?usage: run-smoke.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")"

# target -> seed directory (empty: the target builds its own structured input)
declare -A SEEDS=(
  [decode]=seeds/packets
  [roundtrip]=seeds/packets
  [diff_dhcproto]=seeds/packets
  [relay_info]=seeds/relay82
  [config_toml]=seeds/config-toml
  [config_json]=seeds/config-json
  [decide]=
  [isc_conf]=seeds/isc-conf
  [isc_leases]=seeds/isc-leases
)
ORDER=(decode roundtrip diff_dhcproto relay_info config_toml config_json decide isc_conf isc_leases)
if [ $# -gt 0 ]; then ORDER=("$@"); fi

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
cargo fuzz build --sanitizer none

summary=()
for t in "${ORDER[@]}"; do
  [ -v "SEEDS[$t]" ] || { echo "unknown target $t" >&2; exit 2; }
  mkdir -p "corpus/$t"
  dirs=("corpus/$t")
  [ -n "${SEEDS[$t]}" ] && dirs+=("${SEEDS[$t]}")
  log=$(mktemp)
  echo "== $t (${SECS}s)"
  # The outer timeout is a backstop only: libFuzzer stops itself at -max_total_time.
  if ! timeout $((SECS + 120)) cargo fuzz run --sanitizer none "$t" "${dirs[@]}" -- \
      -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "FUZZ FAILURE in $t (artifacts in fuzz/artifacts/$t)" >&2
    rm -f "$log"
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  summary+=("$t: ${execs:-?} executions, ${cov:-cov: ?}, no crash")
  rm -f "$log"
done
echo "== fuzz smoke: all ${#ORDER[@]} targets ran ${SECS}s each without a crash"
printf '  %s\n' "${summary[@]}"
