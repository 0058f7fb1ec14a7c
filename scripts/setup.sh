# Shared set-up for scripts/sim.sh and scripts/test.sh: system packages, then a virtual
# environment with mfdkit installed. Sourced, not run. Safe to repeat: it only installs what is
# missing, so a second run costs a few seconds.
set -euo pipefail

MFD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MFD_VENV="${MFD_VENV:-$MFD_ROOT/.venv}"

# Debian packages the tests and the simulator drive for real (see docs/technician-guide.md).
# mosquitto: the MQTT 5 broker; pcscd + vsmartcard-vpcd: PC/SC with a virtual reader;
# libpcsclite-dev: headers pyscard builds against.
MFD_APT_PACKAGES="${MFD_APT_PACKAGES:-mosquitto pcscd vsmartcard-vpcd libpcsclite-dev}"

mfd_missing_packages() {
    local missing=""
    for pkg in $MFD_APT_PACKAGES; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $pkg"
        fi
    done
    echo "$missing"
}

mfd_system_packages() {
    command -v dpkg-query >/dev/null 2>&1 || {
        echo "mfdkit: not a Debian system; install these yourself: $MFD_APT_PACKAGES" >&2
        command -v mosquitto >/dev/null 2>&1 || { echo "mfdkit: missing mosquitto (the MQTT broker)" >&2; return 1; }
        return 0
    }
    local missing
    missing="$(mfd_missing_packages)"
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "mfdkit: missing system packages:$missing" >&2
        echo "mfdkit: install them with: sudo apt-get install -y$missing" >&2
        return 1
    fi
    echo "mfdkit: installing system packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # The Debian package starts a system broker/pcscd; ours are private per run, so leave theirs.
}

mfd_venv() {
    local stamp="$MFD_VENV/.mfdkit-installed"
    if [ ! -x "$MFD_VENV/bin/python" ]; then
        echo "mfdkit: creating virtual environment in $MFD_VENV" >&2
        python3 -m venv "$MFD_VENV"
    fi
    # Reinstall only when the project's declared dependencies changed.
    if [ ! -f "$stamp" ] || [ "$MFD_ROOT/pyproject.toml" -nt "$stamp" ]; then
        echo "mfdkit: installing mfdkit and its dependencies" >&2
        # pip's chatter goes to a log; it is shown only if the install fails.
        local log="$MFD_VENV/pip-install.log"
        if ! { "$MFD_VENV/bin/python" -m pip install -q --upgrade pip &&
               "$MFD_VENV/bin/python" -m pip install -q -e "$MFD_ROOT[dev,embedded-broker]"; } \
               >"$log" 2>&1; then
            tail -n 30 "$log" >&2
            echo "mfdkit: installing the Python packages failed (full log: $log)" >&2
            return 1
        fi
        touch "$stamp"
    fi
    export PATH="$MFD_VENV/bin:$PATH"
}
