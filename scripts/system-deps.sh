#!/usr/bin/env bash
# Debian tools the tests run for real: Prometheus and promtool (alert rules, the monitoring chain),
# wrk (the bounded soak test), nginx (MLflow's read-only port, as the chart configures it) and
# PostgreSQL (MLflow's production backend; the tests start their own server on loopback, no
# service is started here). Installed only when missing.
set -euo pipefail
need=()
for tool in prometheus:prometheus promtool:prometheus wrk:wrk nginx:nginx; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || need+=("${tool#*:}")
done
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
