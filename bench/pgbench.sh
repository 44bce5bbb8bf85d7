#!/usr/bin/env bash
# Overhead benchmark, in one run: pgbench straight to PostgreSQL, through pgvisor, and through
# PgBouncer in session mode, on one throwaway PostgreSQL; writes a markdown table.
#
#   bench/pgbench.sh          (or: ./dev bench)
#
# Environment:
#   BENCH_SECONDS  duration of each pgbench run (default 15)
#   BENCH_SCALE    pgbench -i scale factor (default 10)
#   BENCH_OUT      where the table goes (default docs/benchmarks.md)
#
# Everything it starts (PostgreSQL, PgBouncer, pgvisor) and its temporary directory are removed on
# exit, whatever the exit. See bench/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/prereqs.sh
. "$ROOT/scripts/prereqs.sh"

DURATION=${BENCH_SECONDS:-15}
SCALE=${BENCH_SCALE:-10}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
# Seconds of select-only load before measuring, so no target pays for a cold cache.
WARMUP=$((DURATION < 5 ? DURATION : 5))

# Each row: a label and the pgbench arguments; `-j` is added as min(clients, 2).
ROWS=(
    "select-only, prepared, 1 client|-S -M prepared -c 1"
    "select-only, prepared, 8 clients|-S -M prepared -c 8"
    "select-only, simple, 1 client|-S -M simple -c 1"
    "select-only, simple, 8 clients|-S -M simple -c 8"
    "TPC-B (default script), prepared, 8 clients|-M prepared -c 8"
)
TARGETS=(direct pgvisor pgbouncer)

# ---- set-up -------------------------------------------------------------------------------------

require_cargo
require_postgres client
had_pgbouncer=false
{ command -v pgbouncer || test -x /usr/sbin/pgbouncer; } >/dev/null 2>&1 && had_pgbouncer=true
require_packages "pgbouncer|command -v pgbouncer || test -x /usr/sbin/pgbouncer"
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
# With systemd, Debian's package starts a system-wide PgBouncer on 127.0.0.1:6432, pgvisor's
# default port. This benchmark runs its own, so stop the service when it was installed just now.
if ! $had_pgbouncer && systemctl is-active --quiet pgbouncer 2>/dev/null; then
    say "stopping the system PgBouncer service the package started (it holds port 6432)"
    as_root systemctl disable --now pgbouncer ||
        say "could not stop it; to free port 6432 run: sudo systemctl disable --now pgbouncer"
fi

say "building pgvisor (release)"
(cd "$ROOT" && cargo build --release -q -p pgvisor)
PGVISOR="$ROOT/target/release/pgvisor"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgvisor-bench.XXXXXX")
chmod 755 "$WORK"
PGVISOR_PID=
PGBENCH_PID=

# PostgreSQL and PgBouncer refuse to run as root: run them as `postgres` then.
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}
is_root && chown postgres: "$WORK"

cleanup() {
    set +e
    [ -z "$PGBENCH_PID" ] || kill "$PGBENCH_PID" 2>/dev/null
    if [ -n "$PGVISOR_PID" ]; then
        kill "$PGVISOR_PID" 2>/dev/null
        wait "$PGVISOR_PID" 2>/dev/null
    fi
    if [ -s "$WORK/pgbouncer.pid" ]; then
        local pid
        pid=$(cat "$WORK/pgbouncer.pid")
        kill "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    if [ -f "$WORK/data/postmaster.pid" ]; then
        as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nobody listens on, and not handed out before in this run.
USED_PORTS=" "
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 40000))
        case "$USED_PORTS" in *" $port "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            USED_PORTS+="$port "
            echo "$port"
            return 0
        fi
    done
    die "no free TCP port found"
}

wait_port() { # PORT NAME LOG
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    tail -n 20 "$3" >&2 || true
    die "$2 did not start listening on 127.0.0.1:$1"
}

PG_PORT=$(free_port)
BOUNCER_PORT=$(free_port)
PGVISOR_PORT=$(free_port)
ADMIN_PORT=$(free_port)

say "starting a throwaway PostgreSQL on 127.0.0.1:$PG_PORT ($WORK)"
as_pg "$PG_BINDIR/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync \
    >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 60 -o "\
 -c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='$WORK'\
 -c fsync=off -c shared_buffers=256MB -c max_connections=100" start >/dev/null ||
    { tail -n 20 "$WORK/postgres.log" >&2; die "PostgreSQL did not start"; }

export PGUSER=postgres PGHOST=127.0.0.1 PGDATABASE=bench PGSSLMODE=disable PGGSSENCMODE=disable
"$PG_BINDIR/createdb" -p "$PG_PORT" bench
say "pgbench -i -s $SCALE"
"$PG_BINDIR/pgbench" -i -q -s "$SCALE" -p "$PG_PORT" >"$WORK/init.log" 2>&1 ||
    { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }

say "starting PgBouncer (session mode) on 127.0.0.1:$BOUNCER_PORT"
cat >"$WORK/userlist.txt" <<EOF
"postgres" ""
EOF
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
EOF
is_root && chown postgres: "$WORK"/userlist.txt "$WORK"/pgbouncer.ini
as_pg "$PGBOUNCER" -d "$WORK/pgbouncer.ini"
wait_port "$BOUNCER_PORT" PgBouncer "$WORK/pgbouncer.log"

say "starting pgvisor on 127.0.0.1:$PGVISOR_PORT"
"$PGVISOR" --upstream "127.0.0.1:$PG_PORT" --listen "127.0.0.1:$PGVISOR_PORT" --no-tls \
    --admin "127.0.0.1:$ADMIN_PORT" >"$WORK/pgvisor.log" 2>&1 &
PGVISOR_PID=$!
wait_port "$PGVISOR_PORT" pgvisor "$WORK/pgvisor.log"

declare -A PORT=([direct]=$PG_PORT [pgvisor]=$PGVISOR_PORT [pgbouncer]=$BOUNCER_PORT)

# ---- measuring ----------------------------------------------------------------------------------

# percentile FILE P: the P-th percentile (0-100) of the sorted numbers in FILE, nearest rank.
percentile() {
    local n
    n=$(wc -l <"$1")
    [ "$n" -gt 0 ] || { echo 0; return; }
    sed -n "$(((n * $2 + 99) / 100))p" "$1"
}

declare -A TPS P50 P99
# run ROW TARGET ARGS...: one pgbench run; fills TPS (and P50/P99 at one client).
run() {
    local row=$1 target=$2
    shift 2
    local clients=1 prev="" arg
    for arg in "$@"; do
        [ "$prev" = -c ] && clients=$arg
        prev=$arg
    done
    local jobs=$((clients < 2 ? clients : 2)) log=()
    local out="$WORK/run-$row-$target.txt" prefix="$WORK/latency-$row-$target"
    [ "$clients" -eq 1 ] && log=(-l "--log-prefix=$prefix")
    # In the background, so a signal runs the clean-up at once instead of after this run.
    "$PG_BINDIR/pgbench" -p "${PORT[$target]}" -T "$DURATION" -j "$jobs" "${log[@]}" "$@" >"$out" 2>&1 &
    PGBENCH_PID=$!
    if ! wait "$PGBENCH_PID"; then
        PGBENCH_PID=
        cat "$out" >&2
        die "pgbench failed against $target: pgbench $*"
    fi
    PGBENCH_PID=
    local failed
    failed=$(awk -F': ' '/^number of failed transactions/ {split($2, a, " "); print a[1]}' "$out")
    [ "${failed:-0}" = 0 ] || { cat "$out" >&2; die "$failed failed transactions against $target"; }
    TPS[$row,$target]=$(awk '/^tps = / {print $3; exit}' "$out")
    [ -n "${TPS[$row,$target]}" ] || { cat "$out" >&2; die "no tps line in pgbench's output"; }
    if [ "$clients" -eq 1 ]; then
        # Per-transaction log: client_id transaction_no latency_us script_no epoch_s epoch_us.
        cat "$prefix".* | awk '{print $3}' | sort -n >"$prefix.sorted"
        P50[$row,$target]=$(percentile "$prefix.sorted" 50)
        P99[$row,$target]=$(percentile "$prefix.sorted" 99)
        rm -f "$prefix".*
    fi
    printf '    %-9s %10.0f tps\n' "$target" "${TPS[$row,$target]}" >&2
}

say "warming up (${WARMUP}s, select-only, direct)"
"$PG_BINDIR/pgbench" -p "$PG_PORT" -S -T "$WARMUP" -c 2 -j 2 >/dev/null 2>&1

for i in "${!ROWS[@]}"; do
    label=${ROWS[$i]%%|*}
    read -ra args <<<"${ROWS[$i]#*|}"
    order=("${TARGETS[@]}")
    # Alternate the order between rows, so no target always runs first (or last) on a warm machine.
    if ((i % 2 == 1)); then order=(pgbouncer pgvisor direct); fi
    say "$label: pgbench ${args[*]} -T $DURATION (order: ${order[*]})"
    for target in "${order[@]}"; do
        run "$i" "$target" "${args[@]}"
    done
done

# ---- report -------------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+d", a - b }'; }
tps() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }

CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- proxy protocol 2>/dev/null || COMMIT+=" (with uncommitted changes)"

{
    echo "# Benchmarks: pgvisor against direct and PgBouncer"
    echo
    if [ "$DURATION" -lt 15 ]; then
        echo "> **Smoke run** ($DURATION s per pgbench run): checks that the script works end to end;"
        echo "> these numbers are too short-lived to compare. The reference run uses 15 s."
        echo
    fi
    echo "Written by \`bench/pgbench.sh\` (\`./dev bench\`); see bench/README.md for the method."
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) CPUs, ${CPU:-unknown CPU}, $(uname -sr)"
    echo "- PostgreSQL: $("$PG_BINDIR/postgres" --version | sed 's/^postgres (PostgreSQL) //') (fsync=off, shared_buffers=256MB), pgbench scale $SCALE"
    echo "- PgBouncer: $("$PGBOUNCER" --version | head -n 1 | sed 's/^[Pp]g[Bb]ouncer //'), pool_mode=session"
    echo "- pgvisor: commit $COMMIT, release build, \`--no-tls\`"
    echo "- Each run: \`pgbench -T $DURATION -j min(c,2)\` over TCP on 127.0.0.1; client, proxies and server share the machine's CPUs."
    echo
    echo "## Throughput"
    echo
    echo "TPS, and in parentheses the ratio to direct (1.000 = no loss)."
    echo
    echo "| Workload | pgbench | direct | pgvisor | PgBouncer |"
    echo "| --- | --- | ---: | ---: | ---: |"
    for i in "${!ROWS[@]}"; do
        d=${TPS[$i,direct]} v=${TPS[$i,pgvisor]} b=${TPS[$i,pgbouncer]}
        # shellcheck disable=SC2016 # the backticks are markdown
        printf '| %s | `%s` | %s | %s (%s) | %s (%s) |\n' "${ROWS[$i]%%|*}" "${ROWS[$i]#*|}" \
            "$(tps "$d")" "$(tps "$v")" "$(ratio "$v" "$d")" "$(tps "$b")" "$(ratio "$b" "$d")"
    done
    echo
    echo "## Latency at one client"
    echo
    echo "Per-transaction latency from \`pgbench -l\`, in µs; in parentheses the latency added over direct."
    echo
    echo "| Workload | direct p50 | direct p99 | pgvisor p50 | pgvisor p99 | PgBouncer p50 | PgBouncer p99 |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for i in "${!ROWS[@]}"; do
        [ -n "${P50[$i,direct]:-}" ] || continue
        printf '| %s | %s | %s | %s (%s) | %s (%s) | %s (%s) | %s (%s) |\n' "${ROWS[$i]%%|*}" \
            "${P50[$i,direct]}" "${P99[$i,direct]}" \
            "${P50[$i,pgvisor]}" "$(added "${P50[$i,pgvisor]}" "${P50[$i,direct]}")" \
            "${P99[$i,pgvisor]}" "$(added "${P99[$i,pgvisor]}" "${P99[$i,direct]}")" \
            "${P50[$i,pgbouncer]}" "$(added "${P50[$i,pgbouncer]}" "${P50[$i,direct]}")" \
            "${P99[$i,pgbouncer]}" "$(added "${P99[$i,pgbouncer]}" "${P99[$i,direct]}")"
    done
} >"$WORK/report.md"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/report.md" "$OUT"
cat "$WORK/report.md"
say "written to $OUT"
