# Sourced by ./herald and ./run-tests: finds uv, or installs it once into .uv/ with
# nothing but the Python 3.11+ already on the machine.
find_uv() {
  root=$1
  if command -v uv >/dev/null 2>&1; then
    UV=uv
    return
  fi
  if [ ! -x "$root/.uv/bin/uv" ]; then
    python=""
    for candidate in python3 python3.13 python3.12 python3.11 python; do
      if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python=$candidate
        break
      fi
    done
    if [ -z "$python" ]; then
      echo "herald: Python 3.11 or newer is needed (none found on PATH)" >&2
      exit 1
    fi
    echo "herald: installing uv into $root/.uv (first run only)..." >&2
    "$python" -m venv "$root/.uv" && "$root/.uv/bin/python" -m pip install -q --disable-pip-version-check uv
  fi
  UV="$root/.uv/bin/uv"
}
