#!/usr/bin/env bash
# The whole test suite, CPU only (flags pass through to pytest).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$(bash "$root/scripts/env.sh")"
cd "$root"
export JAX_PLATFORMS=cpu
exec "$py" -m pytest -q -n 2 --dist loadfile "$@"
