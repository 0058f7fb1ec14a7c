#!/usr/bin/env bash
# The whole test suite: set-up, lint, type check, tests. README's second command; CI runs this.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
mfd_system_packages
mfd_postgres  # may start a private server, stopped when this script exits
mfd_venv
mfd_node_packages
cd "$MFD_ROOT"
echo "== ruff" && ruff check .
echo "== mypy" && mypy
# The import arrows between packages (pyproject's [tool.importlinter]): a backward import
# fails here, with its chain of imports. No cache: it takes well under a second.
echo "== import-linter" && lint-imports --no-cache --no-logo
# Not exec: the EXIT trap that stops a private PostgreSQL must still run afterwards.
# --fail-on-skip (tests/no_skips.py): every real-stack test runs; a skip fails the run, named.
# Two workers (pytest-xdist; MFD_TEST_WORKERS to change): most tests wait on brokers, ptys and
# browsers rather than compute, so two at once nearly halve the run on a 2-core machine. Each
# worker has its own session fixtures (broker, browser); tests take free ports and temp dirs.
echo "== pytest" && python -m pytest -q --fail-on-skip -n "${MFD_TEST_WORKERS:-2}" "$@"
