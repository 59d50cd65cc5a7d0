#!/usr/bin/env bash
# The main job: the whole MaskGAN study on the embedded corpora (flags pass through).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$(bash "$root/scripts/env.sh")"
cd "$root"
exec "$py" -m experiments.study "$@"
