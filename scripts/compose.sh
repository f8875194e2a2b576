#!/usr/bin/env bash
# Prints the directory holding `docker-compose`, installing Debian's
# `docker-compose` package when it is not on PATH: its `config` command validates
# docker/compose.yaml against the Compose schema without a Docker engine.
set -euo pipefail
exec bash "$(dirname "$0")/debian-tool.sh" docker-compose docker-compose
