#!/usr/bin/env bash
# The whole test suite: set-up, lint, type check, tests. README's second command; CI runs this.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
mfd_system_packages
mfd_venv
cd "$MFD_ROOT"
echo "== ruff" && ruff check .
echo "== mypy" && mypy
echo "== pytest" && exec python -m pytest -q "$@"
