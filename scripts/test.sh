#!/usr/bin/env bash
# Installs what is needed and runs the whole test suite. Extra arguments go to pytest.
# Real PostgreSQL when FORUM_TEST_DATABASE_URL is set (CI sets it), SQLite otherwise.
source "$(dirname "$0")/_env.sh"
need_python "[test]"
need_npm
need_chromium
need_pdf_libraries
exec .venv/bin/python -m pytest "$@"
