# shellcheck shell=bash
# Finding, or installing, what ./dev and bench/pgbench.sh need. Sourced, not run.
#
# Installs use Debian/Ubuntu's apt-get (non-interactive; through sudo when not root). When that is
# impossible, we stop and print the exact command to run instead.

# Where Debian and Ubuntu keep each PostgreSQL major version's server binaries.
PG_LIB_DIR=${PG_LIB_DIR:-/usr/lib/postgresql}

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

die() {
    printf 'error: %b\n' "$*" >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if is_root; then "$@"; else sudo "$@"; fi
}

# Prints a directory that holds both `initdb` and `postgres`, searched in the order pgvisor uses
# (proxy/src/embedded/mod.rs: find_bindir): PATH, `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin.
find_pg_bindir() {
    local dir path_dirs versioned candidates=()
    IFS=: read -ra path_dirs <<<"$PATH"
    for dir in "${path_dirs[@]}"; do
        [ -n "$dir" ] && [ -e "$dir/initdb" ] || continue
        # PATH may hold a symlink into the real bindir: resolve it so sibling tools match.
        candidates+=("$(dirname "$(readlink -f "$dir/initdb")")")
    done
    if command -v pg_config >/dev/null 2>&1; then
        candidates+=("$(pg_config --bindir 2>/dev/null || true)")
    fi
    mapfile -t versioned < <(compgen -G "$PG_LIB_DIR/*/bin" | sort -V -r)
    candidates+=("${versioned[@]}")
    for dir in "${candidates[@]}"; do
        if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

# True when apt has package lists to install from (a fresh container has none).
have_apt_lists() {
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

# install_packages PKG...: apt-get install, running `apt-get update` only when the install needs it.
install_packages() {
    local wanted="$*"
    local manual="sudo apt-get update && sudo apt-get install -y $wanted"
    command -v apt-get >/dev/null 2>&1 ||
        die "missing: $wanted. This is not a Debian/Ubuntu machine (no apt-get): install the equivalent packages with your package manager, then run this again."
    local sudo=()
    if ! is_root; then
        command -v sudo >/dev/null 2>&1 ||
            die "missing: $wanted, and there is no sudo to install it. As root, run:\n  apt-get update && apt-get install -y $wanted\nthen run this again."
        sudo=(sudo)
        # No terminal to ask for a password on: fail at once instead of hanging.
        [ -t 0 ] || sudo=(sudo -n)
    fi
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y)
    say "installing $wanted (apt-get)"
    if have_apt_lists && "${apt[@]}" install --no-install-recommends "$@"; then
        return 0
    fi
    # No package lists yet, or stale ones: refresh them once and try again.
    "${apt[@]}" update && "${apt[@]}" install --no-install-recommends "$@" ||
        die "could not install $wanted. Run this, then run this again:\n  $manual"
}

# require_packages "PKG|CHECK"...: installs each Debian package PKG whose shell CHECK fails.
require_packages() {
    local entry missing=()
    for entry in "$@"; do
        eval "${entry#*|}" >/dev/null 2>&1 || missing+=("${entry%%|*}")
    done
    [ ${#missing[@]} -eq 0 ] || install_packages "${missing[@]}"
    for entry in "$@"; do
        eval "${entry#*|}" >/dev/null 2>&1 ||
            die "${entry%%|*} was installed, but this check still fails: ${entry#*|}"
    done
}

# PostgreSQL refuses to run as root: pgvisor then runs its embedded server as `postgres`.
require_postgres_user() {
    is_root || return 0
    id postgres >/dev/null 2>&1 && return 0
    say "creating the system user postgres (PostgreSQL refuses to run as root)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres ||
        die "could not create the postgres user. Run: useradd --system --user-group postgres"
}

# require_postgres [client]: finds or installs the server binaries (and with `client`, psql and
# pgbench too), sets PG_BINDIR and puts it first on PATH so every tool is the same version.
require_postgres() {
    if ! PG_BINDIR=$(find_pg_bindir); then
        say "no PostgreSQL server binaries (initdb, postgres) found"
        install_packages postgresql
        PG_BINDIR=$(find_pg_bindir) ||
            die "postgresql was installed, but initdb and postgres are still not found (PATH, pg_config --bindir, $PG_LIB_DIR/*/bin)"
    fi
    if [ "${1:-}" = client ] && ! { [ -x "$PG_BINDIR/psql" ] && [ -x "$PG_BINDIR/pgbench" ]; }; then
        # Debian ships pgbench with the server (postgresql-NN) and psql in postgresql-client-NN.
        install_packages postgresql postgresql-client
        [ -x "$PG_BINDIR/psql" ] && [ -x "$PG_BINDIR/pgbench" ] ||
            die "psql and pgbench are not in $PG_BINDIR after installing postgresql"
    fi
    require_postgres_user
    export PATH="$PG_BINDIR:$PATH"
}

# Rust comes from rustup, not apt: say how to get it rather than guess.
require_cargo() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo is not installed. Install Rust with rustup (https://rustup.rs), open a new shell, then run this again."
}
