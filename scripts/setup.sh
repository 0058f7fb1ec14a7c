# Shared set-up for scripts/sim.sh and scripts/test.sh: system packages, then a virtual
# environment with mfdkit installed. Sourced, not run. Safe to repeat: it only installs what is
# missing, so a second run costs a few seconds.
set -euo pipefail

MFD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MFD_VENV="${MFD_VENV:-$MFD_ROOT/.venv}"

# Debian packages the tests and the simulator drive for real (see docs/technician-guide.md).
# mosquitto: the MQTT 5 broker; pcscd + vsmartcard-vpcd: PC/SC with a virtual reader;
# libpcsclite-dev: headers pyscard builds against; cups-ipp-utils (ippeveprinter, a real IPP
# Everywhere printer) with the avahi-daemon and dbus it needs to start.
# The panel: fontconfig + fonts-noto-core/-cjk/-color-emoji set job names in every script
# (device_app/panel/fonts.py); xvfb + x11-apps (xwd) give the panel a real X display to open
# full screen on and grab (tests/test_panel_xvfb.py). chromium: the browser every web test
# drives (tests/web_helpers.py).
MFD_APT_PACKAGES="${MFD_APT_PACKAGES:-mosquitto pcscd vsmartcard-vpcd libpcsclite-dev cups-ipp-utils avahi-daemon dbus fontconfig fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji xvfb x11-apps chromium}"

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

# PostgreSQL for the cloud tests, which run on it as well as on SQLite (tests/pg.py reads
# MFD_TEST_PG). Order of preference: MFD_TEST_PG if the caller set it; a server already
# answering on 127.0.0.1:MFD_PG_PORT (5432, a developer's or CI's service); else a private
# throw-away cluster for this run, on a free port, removed when the calling script exits.
# Point MFD_PG_PORT at a port where nothing listens to force the private cluster (that is how
# the fallback is tested).
MFD_PG_PORT="${MFD_PG_PORT:-5432}"

mfd_pg_answers() {  # host port
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$1" -p "$2" -t 2
    else
        # No client tools: a TCP connect is a good enough sign for the fast path; tests/pg.py
        # reports clearly if what answers is not a usable PostgreSQL.
        timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
    fi
}

mfd_pg_bindir() {  # the newest installed server's programs (Debian keeps them off PATH)
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    else
        return 1
    fi
}

mfd_postgres() {
    if [ -n "${MFD_TEST_PG:-}" ]; then
        return 0
    fi
    if mfd_pg_answers 127.0.0.1 "$MFD_PG_PORT"; then
        export MFD_TEST_PG="postgresql://postgres@127.0.0.1:$MFD_PG_PORT/postgres"
        return 0
    fi
    local bindir
    if ! bindir="$(mfd_pg_bindir)"; then
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
            echo "mfdkit: no PostgreSQL on 127.0.0.1:$MFD_PG_PORT for the cloud tests, and no server installed" >&2
            echo "mfdkit: install it with: sudo apt-get install -y postgresql (or set MFD_TEST_PG to a server URL)" >&2
            return 1
        fi
        echo "mfdkit: installing system packages: postgresql" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        bindir="$(mfd_pg_bindir)"
    fi
    # initdb refuses to run as root, so root runs the cluster as Debian's postgres user.
    local as=()
    if [ "$(id -u)" -eq 0 ]; then
        as=(runuser -u postgres --)
    fi
    MFD_PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/mfdkit-pg.XXXXXX")"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$MFD_PG_DIR"
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    trap mfd_postgres_stop EXIT
    # A non-interactive bash dies of TERM without running the EXIT trap; exiting runs it.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo "mfdkit: no PostgreSQL on 127.0.0.1:$MFD_PG_PORT; starting a private one on port $port" >&2
    # Trust on loopback only, as the tests connect as postgres without a password. No fsync:
    # the data lives for one run.
    if ! "${as[@]}" "$bindir/initdb" -D "$MFD_PG_DIR/data" -U postgres -A trust -E UTF8 \
            --no-sync >"$MFD_PG_DIR/initdb.log" 2>&1; then
        cat "$MFD_PG_DIR/initdb.log" >&2
        echo "mfdkit: initdb failed (log above)" >&2
        return 1
    fi
    # The socket goes into our directory: the system's may not exist or not be ours.
    if ! "${as[@]}" "$bindir/pg_ctl" -D "$MFD_PG_DIR/data" -l "$MFD_PG_DIR/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $MFD_PG_DIR -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
            start >/dev/null; then
        cat "$MFD_PG_DIR/server.log" >&2
        echo "mfdkit: the private PostgreSQL did not start (log above)" >&2
        return 1
    fi
    export MFD_TEST_PG="postgresql://postgres@127.0.0.1:$port/postgres"
}

mfd_postgres_stop() {
    [ -n "${MFD_PG_DIR:-}" ] && [ -d "$MFD_PG_DIR" ] || return 0
    local as=() bindir
    [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
    if bindir="$(mfd_pg_bindir)" && [ -f "$MFD_PG_DIR/data/postmaster.pid" ]; then
        "${as[@]}" "$bindir/pg_ctl" -D "$MFD_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$MFD_PG_DIR" || true
}

# The single sign-on tests' OpenID provider: the oidc-provider package for Node.js in tests/oidc,
# pinned by its package-lock.json. Node.js 20 or later with npm comes with the machine; npm ci
# runs only when the lock changed since the last install (it wipes node_modules first).
mfd_node_packages() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1 \
            || ! node -e 'process.exit(+process.versions.node.split(".")[0] < 20 ? 1 : 0)'; then
        echo "mfdkit: missing Node.js 20 or later with npm: the single sign-on tests run an" \
             "OpenID provider on it (tests/oidc)" >&2
        return 1
    fi
    local dir="$MFD_ROOT/tests/oidc" want have=""
    want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    [ -f "$dir/node_modules/.mfd-lock" ] && have="$(cat "$dir/node_modules/.mfd-lock")"
    [ "$want" = "$have" ] && return 0
    echo "mfdkit: installing the test OpenID provider (npm ci in tests/oidc)" >&2
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    echo "$want" > "$dir/node_modules/.mfd-lock"
}
