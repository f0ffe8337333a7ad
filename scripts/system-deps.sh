#!/usr/bin/env bash
# Debian tools the tests run for real: Prometheus and promtool (alert rules, the monitoring chain)
# and wrk (the bounded soak test). Installed only when missing.
set -euo pipefail
need=()
for tool in prometheus:prometheus promtool:prometheus wrk:wrk; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
