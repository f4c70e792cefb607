#!/usr/bin/env bash
# Installs what is needed and starts the whole forum locally. Usage: scripts/up.sh [--demo] [--port 8000]
source "$(dirname "$0")/_env.sh"
need_python ""
need_npm
need_pdf_libraries
exec .venv/bin/forum-ouvert up "$@"
