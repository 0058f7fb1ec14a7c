#!/usr/bin/env bash
# The main job: the simulator. A window where there is a display, otherwise the headless demo.
# Extra arguments go to `mfd sim` (e.g. --screenshots DIR).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
MFD_APT_PACKAGES="mosquitto" mfd_system_packages
mfd_venv
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    exec mfd sim "$@"
fi
exec mfd sim --headless "$@"
