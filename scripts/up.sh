#!/usr/bin/env bash
# Installs what is needed and starts the whole forum locally. Usage: scripts/up.sh [--demo] [--port 8000]
source "$(dirname "$0")/_env.sh"
need_python ""
need_npm
exec .venv/bin/forum-ouvert up "$@"
