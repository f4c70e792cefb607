# Shared by scripts/up.sh and scripts/test.sh: install what the forum needs, once per change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"

need_python() {
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "Python 3.11 or newer is required (found $("$PYTHON" --version 2>&1))." >&2; exit 1; }
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  local extras="$1" stamp=".venv/.installed$1"
  local sum; sum="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
    echo "==> Installing Python packages (.venv)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".$extras"
    echo "$sum" > "$stamp"
  fi
}

need_npm() {
  command -v npm >/dev/null || { echo "npm (Node.js) is required for the site's design system assets." >&2; exit 1; }
  local sum; sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ ! -d node_modules/@gouvfr/dsfr ] || [ ! -f node_modules/.installed ] || [ "$(cat node_modules/.installed)" != "$sum" ]; then
    echo "==> Installing front-end assets (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$sum" > node_modules/.installed
  fi
}

need_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  echo "==> Installing Chromium for the browser tests (apt-get)"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver >/dev/null
}

# WeasyPrint (the minutes' PDF) loads Pango and HarfBuzz from the system and uses only local fonts.
PDF_PACKAGES=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core)

need_pdf_libraries() {
  if ! command -v dpkg-query >/dev/null; then
    echo "Note: the minutes' PDF needs Pango (>= 1.44), HarfBuzz and the DejaVu fonts; install them with your system's packages." >&2
    return 0
  fi
  local missing=() pkg
  for pkg in "${PDF_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  echo "==> Installing the libraries of the minutes' PDF renderer (apt-get: ${missing[*]})"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null
}
