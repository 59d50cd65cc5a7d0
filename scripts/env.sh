#!/usr/bin/env bash
# Creates (first use) or reuses the project's virtualenv at .venv and prints its python.
# Reinstalls when setup.cfg changes, so a pulled dependency change is picked up.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MASKGAN_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
stamp="$venv/.maskgan-installed"
want="$(cat "$root/setup.cfg" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "[env] creating virtualenv $venv" >&2
  "$py" -m venv "$venv" >&2
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[env] installing maskgan-jax, its test dependencies and Ray into $venv (first use: about a minute)" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -e "$root[test,ray]" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
