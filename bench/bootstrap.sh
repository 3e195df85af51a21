#!/usr/bin/env bash
# Wall time of tools/bootstrap on a cold tool cache and on a warm one, and the cache's size.
# Cold: an empty DATAKIT_CACHE (engine built, Kafka fetched; Go and Maven's own download
# caches stay warm unless COLD_GO=1 / COLD_MAVEN=1 point them at empty dirs too).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=$(mktemp -d /tmp/datakit-bench-cache.XXXX)
trap 'rm -rf "$cache" ${gocache:-} ${m2:-}' EXIT
export DATAKIT_CACHE=$cache
if [ "${COLD_GO:-0}" = 1 ]; then gocache=$(mktemp -d); export GOMODCACHE=$gocache/mod GOCACHE=$gocache/build; fi
if [ "${COLD_MAVEN:-0}" = 1 ]; then m2=$(mktemp -d); export MAVEN_OPTS="-Dmaven.repo.local=$m2"; fi
t() { local s=$(date +%s%N); "$root/tools/bootstrap" >/dev/null; echo $(( ($(date +%s%N) - s) / 1000000 )); }
cold=$(t)
warm=$(t)
size=$(du -sm "$cache" | cut -f1)
printf 'bootstrap cold_s=%d.%01d warm_s=%d.%01d tools_mb=%s\n' \
  $((cold / 1000)) $((cold % 1000 / 100)) $((warm / 1000)) $((warm % 1000 / 100)) "$size"
