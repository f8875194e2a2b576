#!/usr/bin/env bash
# Prints the directory holding `prometheus` and `promtool`, installing Debian's
# `prometheus` package when they are not on PATH (its service is not started).
set -euo pipefail
exec bash "$(dirname "$0")/debian-tool.sh" prometheus promtool prometheus
