#!/usr/bin/env bash
# Overhead benchmark, in one run: pgbench straight to PostgreSQL, through pgvisor (default flags),
# through PgBouncer in session mode, and through `floor`, a bare forwarder that parses nothing,
# on one throwaway PostgreSQL; writes a markdown report: throughput, latency at one client, CPU
# per transaction of each proxy, and whether pgvisor meets its targets. A second copy of the floor
# runs as a fifth target: how far two identical proxies differ is the run's own noise.
#
#   bench/pgbench.sh          (or: ./dev bench)
#
# Environment:
#   BENCH_SECONDS  time each target runs each row, in all (default 15)
#   BENCH_ROUNDS   the rounds that time is split into, the targets taking turns in each (default 3)
#   BENCH_SCALE    pgbench -i scale factor (default 10)
#   BENCH_OUT      where the report goes (default docs/benchmarks.md)
#
# Everything it starts (PostgreSQL, PgBouncer, pgvisor, floor) and its temporary directory are
# removed on exit, whatever the exit. See bench/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/prereqs.sh
. "$ROOT/scripts/prereqs.sh"

DURATION=${BENCH_SECONDS:-15}
ROUNDS=${BENCH_ROUNDS:-3}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive whole number, not '$ROUNDS'"
# Each pgbench run: a round's share of the time, at least a second.
ROUND_SECONDS=$((DURATION / ROUNDS > 0 ? DURATION / ROUNDS : 1))
SCALE=${BENCH_SCALE:-10}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks.md}
# Seconds of select-only load before measuring, so no target pays for a cold cache.
WARMUP=$((DURATION < 5 ? DURATION : 5))
# The ORM-like script, relative to the repository (pgbench runs from there): 50 rows of 10
# columns per transaction. Custom scripts get :scale from -s, so the rows pass it.
ORM_SCRIPT=bench/pgbench-scripts/orm-50x10.sql

# Each row: a label and the pgbench arguments; `-j` is added as min(clients, 2).
ROWS=(
    "select-only, prepared, 1 client|-S -M prepared -c 1"
    "select-only, prepared, 8 clients|-S -M prepared -c 8"
    "select-only, simple, 1 client|-S -M simple -c 1"
    "select-only, simple, 8 clients|-S -M simple -c 8"
    "TPC-B (default script), prepared, 8 clients|-M prepared -c 8"
    "TPC-B (default script), simple, 8 clients|-M simple -c 8"
    "ORM-like, 50 rows x 10 columns, prepared, 1 client|-f $ORM_SCRIPT -s $SCALE -M prepared -c 1"
    "ORM-like, 50 rows x 10 columns, prepared, 8 clients|-f $ORM_SCRIPT -s $SCALE -M prepared -c 8"
)
# floor2 is a second process of the same floor binary: it measures nothing about pgvisor, only
# how far two identical targets differ in this run (its noise). It runs at the other end of each
# round from the floor, so the two are at least as far apart in time as any two targets compared.
TARGETS=(floor2 direct pgvisor pgbouncer floor)
PROXIES=(pgvisor pgbouncer floor)
# pgvisor's throughput targets: at least PgBouncer's, and at least this share of the floor's.
FLOOR_SHARE=0.95

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

say "building pgvisor and floor (release)"
(cd "$ROOT" && cargo build --release -q -p pgvisor -p pgvisor-bench)
PGVISOR="$ROOT/target/release/pgvisor"
FLOOR="$ROOT/target/release/floor"
[ -f "$ROOT/$ORM_SCRIPT" ] || die "missing $ROOT/$ORM_SCRIPT"
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgvisor-bench.XXXXXX")
chmod 755 "$WORK"
PGVISOR_PID=
FLOOR_PID=
FLOOR2_PID=
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

# stop_child PID: a process this script started in the background.
stop_child() {
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

cleanup() {
    set +e
    [ -z "$PGBENCH_PID" ] || kill "$PGBENCH_PID" 2>/dev/null
    stop_child "$PGVISOR_PID"
    stop_child "$FLOOR_PID"
    stop_child "$FLOOR2_PID"
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
FLOOR_PORT=$(free_port)
FLOOR2_PORT=$(free_port)

say "starting a throwaway PostgreSQL on 127.0.0.1:$PG_PORT ($WORK)"
as_pg "$PG_BINDIR/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync \
    >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
as_pg "$PG_BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 60 -o "\
 -c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='$WORK'\
 -c fsync=off -c shared_buffers=256MB -c max_connections=100" start >/dev/null ||
    { tail -n 20 "$WORK/postgres.log" >&2; die "PostgreSQL did not start"; }

# libpq's defaults otherwise, as a user would have them: sslmode=prefer, so every client asks
# each target for TLS and is told no (this PostgreSQL has no TLS, so neither PgBouncer, pgvisor
# nor floor offer it). GSS encryption is off because there is no Kerberos here: asking for it
# only costs every target the same extra round trip per connection.
unset PGSSLMODE
export PGUSER=postgres PGHOST=127.0.0.1 PGDATABASE=bench PGGSSENCMODE=disable
"$PG_BINDIR/createdb" -p "$PG_PORT" bench
say "pgbench -i -s $SCALE"
"$PG_BINDIR/pgbench" -i -q -s "$SCALE" -p "$PG_PORT" >"$WORK/init.log" 2>&1 ||
    { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }

say "starting PgBouncer (session mode) on 127.0.0.1:$BOUNCER_PORT"
cat >"$WORK/userlist.txt" <<EOC
"postgres" ""
EOC
cat >"$WORK/pgbouncer.ini" <<EOC
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
EOC
is_root && chown postgres: "$WORK"/userlist.txt "$WORK"/pgbouncer.ini
as_pg "$PGBOUNCER" -d "$WORK/pgbouncer.ini"
wait_port "$BOUNCER_PORT" PgBouncer "$WORK/pgbouncer.log"
# It listens before it writes its pid file: give it a moment.
for _ in $(seq 50); do [ -s "$WORK/pgbouncer.pid" ] && break; sleep 0.1; done
[ -s "$WORK/pgbouncer.pid" ] || die "PgBouncer wrote no pid file ($WORK/pgbouncer.pid)"

# Each server runs in a session of its own, as PostgreSQL (pg_ctl) and PgBouncer (-d) do and as a
# server started from its own terminal does. Linux's autogroup scheduling (on by default) shares
# the CPU between sessions first: a proxy left in this script's session would share pgbench's
# share, and lose throughput to that alone (the bare forwarder lost 10-12% against PgBouncer in
# TPC-B at 8 clients that way, measured by hand on 2 CPUs). In a script without job control the
# background subshell leads no process group, so setsid(1) runs the server in place: $! is its pid.
in_own_session() {
    local pid=$1 name=$2 sid
    sid=$(ps -o sid= -p "$pid" | tr -d ' ')
    [ "$sid" = "$pid" ] || die "$name (pid $pid) did not get a session of its own (session $sid)"
}

say "starting pgvisor on 127.0.0.1:$PGVISOR_PORT (default flags)"
# Default flags means the flags' defaults too: no PGVISOR_* variable (nor --config) leaks in.
mapfile -t pgvisor_env < <(compgen -e | grep '^PGVISOR_' || true)
(
    unset "${pgvisor_env[@]}"
    exec setsid "$PGVISOR" --upstream "127.0.0.1:$PG_PORT" --listen "127.0.0.1:$PGVISOR_PORT" \
        --admin "127.0.0.1:$ADMIN_PORT"
) >"$WORK/pgvisor.log" 2>&1 &
PGVISOR_PID=$!
wait_port "$PGVISOR_PORT" pgvisor "$WORK/pgvisor.log"
in_own_session "$PGVISOR_PID" pgvisor
# pgvisor's forwarding loops with its default --threads (one per CPU, 1 to 4), which the floor
# copies: its listener's thread and one pgvisor-fwd-N thread per other loop, counted once it
# listens (the loops have started by then).
WORKERS=$(($(grep -lx 'pgvisor-fwd-[0-9]*' /proc/"$PGVISOR_PID"/task/*/comm 2>/dev/null | wc -l || true) + 1))

say "starting floor (bare forwarder) on 127.0.0.1:$FLOOR_PORT"
setsid "$FLOOR" --listen "127.0.0.1:$FLOOR_PORT" --upstream "127.0.0.1:$PG_PORT" >"$WORK/floor.log" 2>&1 &
FLOOR_PID=$!
wait_port "$FLOOR_PORT" floor "$WORK/floor.log"
in_own_session "$FLOOR_PID" floor

say "starting a second floor on 127.0.0.1:$FLOOR2_PORT (the run's noise: the same proxy twice)"
setsid "$FLOOR" --listen "127.0.0.1:$FLOOR2_PORT" --upstream "127.0.0.1:$PG_PORT" >"$WORK/floor2.log" 2>&1 &
FLOOR2_PID=$!
wait_port "$FLOOR2_PORT" "second floor" "$WORK/floor2.log"
in_own_session "$FLOOR2_PID" "second floor"

declare -A PORT=([direct]=$PG_PORT [pgvisor]=$PGVISOR_PORT [pgbouncer]=$BOUNCER_PORT [floor]=$FLOOR_PORT [floor2]=$FLOOR2_PORT)
declare -A PID=([pgvisor]=$PGVISOR_PID [pgbouncer]=$(cat "$WORK/pgbouncer.pid") [floor]=$FLOOR_PID [floor2]=$FLOOR2_PID)

# ---- measuring ----------------------------------------------------------------------------------

# percentile FILE P: the P-th percentile (0-100) of the sorted numbers in FILE, nearest rank.
percentile() {
    local n
    n=$(wc -l <"$1")
    [ "$n" -gt 0 ] || { echo 0; return; }
    sed -n "$(((n * $2 + 99) / 100))p" "$1"
}

# cpu_ticks PID: user and system CPU time of the whole process (all threads) so far, in clock
# ticks, as "USER SYSTEM": fields 14 and 15 of /proc/PID/stat, counted after the parenthesised
# command name.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat") || die "process $1 is gone"
    stat=${stat##*) }
    # After "comm)", the fields start at 3 (state), so utime and stime are the 12th and 13th.
    awk '{ print $12, $13 }' <<<"$stat"
}

# thread_times PID: one line per thread of the process, "TID RUN_NS WAIT_NS": the time it ran
# and the time it was runnable but waited for a CPU (/proc/PID/task/TID/schedstat). Nothing when
# the kernel does not keep scheduler statistics.
thread_times() {
    local task
    for task in /proc/"$1"/task/*; do
        [ -r "$task/schedstat" ] || continue
        echo "${task##*/} $(cut -d' ' -f1,2 "$task/schedstat" 2>/dev/null)"
    done
}

# busiest_thread BEFORE AFTER: of the threads in both snapshots (thread_times), the one that ran
# longest between them: "RUN_NS WAIT_NS"; nothing without snapshots or when the kernel counts
# nothing (schedstat reads 0 0 0 without scheduler statistics).
busiest_thread() {
    awk 'NR == FNR { run[$1] = $2; wait[$1] = $3; next }
         ($1 in run) && NF == 3 && $2 - run[$1] >= best { best = $2 - run[$1]; w = $3 - wait[$1]; found = 1 }
         END { if (found && best > 0) printf "%.0f %.0f\n", best, w }' <(echo "$1") <(echo "$2")
}

declare -A TPS P50 P99 CPU_US CPU_USER_US CPU_SYS_US BUSY_RUN_US BUSY_WAIT_US
# Sums over a row's rounds, per row and target.
declare -A TPS_SUM RUNS TX USER_TICKS SYS_TICKS BUSY_RUN_NS BUSY_WAIT_NS

# cpu_cell ROW TARGET: "total (user + system)" CPU µs per transaction, for the report.
cpu_cell() {
    echo "${CPU_US[$1,$2]} (${CPU_USER_US[$1,$2]} + ${CPU_SYS_US[$1,$2]})"
}

# run ROW ROUND TARGET CLIENTS ARGS...: one pgbench run of a round (ARGS hold -c CLIENTS); adds
# to the row's sums (see finish_row) and keeps its latency log at one client.
run() {
    local row=$1 round=$2 target=$3 clients=$4
    shift 4
    local jobs=$((clients < 2 ? clients : 2)) log=()
    local out="$WORK/run-$row-$target.txt" prefix="$WORK/latency-$row-$target-$round"
    [ "$clients" -eq 1 ] && log=(-l "--log-prefix=$prefix")
    local pid=${PID[$target]:-} before="0 0" threads_before=""
    [ -z "$pid" ] || { before=$(cpu_ticks "$pid"); threads_before=$(thread_times "$pid"); }
    # In the background, so a signal runs the clean-up at once instead of after this run; from
    # the repository, where the rows' script paths start.
    (cd "$ROOT" && exec "$PG_BINDIR/pgbench" -p "${PORT[$target]}" -T "$ROUND_SECONDS" -j "$jobs" "${log[@]}" "$@") \
        >"$out" 2>&1 &
    PGBENCH_PID=$!
    if ! wait "$PGBENCH_PID"; then
        PGBENCH_PID=
        cat "$out" >&2
        die "pgbench failed against $target: pgbench $*"
    fi
    PGBENCH_PID=
    local after="0 0" failed transactions busiest=""
    [ -z "$pid" ] || { after=$(cpu_ticks "$pid"); busiest=$(busiest_thread "$threads_before" "$(thread_times "$pid")"); }
    failed=$(awk -F': ' '/^number of failed transactions/ {split($2, a, " "); print a[1]}' "$out")
    [ "${failed:-0}" = 0 ] || { cat "$out" >&2; die "$failed failed transactions against $target"; }
    local tps
    tps=$(awk '/^tps = / {print $3; exit}' "$out")
    [ -n "$tps" ] || { cat "$out" >&2; die "no tps line in pgbench's output"; }
    # "number of transactions actually processed: N" (or "N/M" with -t).
    transactions=$(awk -F': ' '/^number of transactions actually processed/ {split($2, a, "/"); print a[1] + 0; exit}' "$out")
    [ "${transactions:-0}" -gt 0 ] || { cat "$out" >&2; die "no transactions processed against $target"; }
    TPS_SUM[$row,$target]=$(awk -v a="${TPS_SUM[$row,$target]:-0}" -v b="$tps" 'BEGIN { printf "%.3f", a + b }')
    RUNS[$row,$target]=$((${RUNS[$row,$target]:-0} + 1))
    TX[$row,$target]=$((${TX[$row,$target]:-0} + transactions))
    if [ -n "$pid" ]; then
        local user0 sys0 user1 sys1
        read -r user0 sys0 <<<"$before"
        read -r user1 sys1 <<<"$after"
        USER_TICKS[$row,$target]=$((${USER_TICKS[$row,$target]:-0} + user1 - user0))
        SYS_TICKS[$row,$target]=$((${SYS_TICKS[$row,$target]:-0} + sys1 - sys0))
    fi
    if [ -n "$busiest" ]; then
        local busy_run busy_wait
        read -r busy_run busy_wait <<<"$busiest"
        BUSY_RUN_NS[$row,$target]=$((${BUSY_RUN_NS[$row,$target]:-0} + busy_run))
        BUSY_WAIT_NS[$row,$target]=$((${BUSY_WAIT_NS[$row,$target]:-0} + busy_wait))
    fi
    printf '    %-9s %10.0f tps  (round %s)\n' "$target" "$tps" "$round" >&2
}

# finish_row ROW CLIENTS: from the sums of the row's rounds, TPS (the rounds' mean), CPU per
# transaction for a proxy, and at one client P50/P99 over every round's transactions.
finish_row() {
    local row=$1 clients=$2 target per='BEGIN { printf "%.1f", t * 1e6 / hz / n }' per_ns='BEGIN { printf "%.1f", t / 1000 / n }'
    for target in "${TARGETS[@]}"; do
        TPS[$row,$target]=$(awk -v s="${TPS_SUM[$row,$target]}" -v n="${RUNS[$row,$target]}" 'BEGIN { printf "%.1f", s / n }')
        if [ -n "${PID[$target]:-}" ]; then
            local user=${USER_TICKS[$row,$target]} sys=${SYS_TICKS[$row,$target]} n=${TX[$row,$target]}
            CPU_US[$row,$target]=$(awk -v t="$((user + sys))" -v hz="$CLK_TCK" -v n="$n" "$per")
            CPU_USER_US[$row,$target]=$(awk -v t="$user" -v hz="$CLK_TCK" -v n="$n" "$per")
            CPU_SYS_US[$row,$target]=$(awk -v t="$sys" -v hz="$CLK_TCK" -v n="$n" "$per")
            if [ -n "${BUSY_RUN_NS[$row,$target]:-}" ]; then
                BUSY_RUN_US[$row,$target]=$(awk -v t="${BUSY_RUN_NS[$row,$target]}" -v n="$n" "$per_ns")
                BUSY_WAIT_US[$row,$target]=$(awk -v t="${BUSY_WAIT_NS[$row,$target]}" -v n="$n" "$per_ns")
            fi
        fi
        if [ "$clients" -eq 1 ]; then
            local prefix="$WORK/latency-$row-$target"
            # Per-transaction log: client_id transaction_no latency_us script_no epoch_s epoch_us.
            cat "$prefix"-*.* | awk '{print $3}' | sort -n >"$prefix.sorted"
            P50[$row,$target]=$(percentile "$prefix.sorted" 50)
            P99[$row,$target]=$(percentile "$prefix.sorted" 99)
            rm -f "$prefix"-*.*
        fi
        printf '    %-9s %10.0f tps  %8s CPU µs/tx (%s rounds)\n' "$target" "${TPS[$row,$target]}" \
            "${CPU_US[$row,$target]:--}" "${RUNS[$row,$target]}" >&2
    done
}

LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
say "warming up (${WARMUP}s, select-only, direct)"
"$PG_BINDIR/pgbench" -p "$PG_PORT" -S -T "$WARMUP" -c 2 -j 2 >/dev/null 2>&1

for i in "${!ROWS[@]}"; do
    label=${ROWS[$i]%%|*}
    read -ra args <<<"${ROWS[$i]#*|}"
    # The row's -c, which decides -j and whether latency is logged.
    clients=1 prev=""
    for arg in "${args[@]}"; do
        [ "$prev" = -c ] && clients=$arg
        prev=$arg
    done
    say "$label: pgbench ${args[*]}, $ROUNDS rounds of -T $ROUND_SECONDS, the targets taking turns"
    for ((round = 1; round <= ROUNDS; round++)); do
        order=("${TARGETS[@]}")
        # Alternate the order between rounds and rows, so no target always runs first (or last)
        # on a warm machine, and a drift of the machine's state within a row reaches them all.
        if (((i + round) % 2 == 1)); then
            order=()
            for ((t = ${#TARGETS[@]} - 1; t >= 0; t--)); do order+=("${TARGETS[$t]}"); done
        fi
        for target in "${order[@]}"; do
            run "$i" "$round" "$target" "$clients" "${args[@]}"
        done
    done
    finish_row "$i" "$clients"
done

LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)

# ---- report -------------------------------------------------------------------------------------

# The proxies' own complaints (a refused session, an upstream error) would explain odd numbers.
# pgvisor logs its advice as warnings: those are its normal work, not complaints.
for log in pgvisor floor floor2; do
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/$log.log" | grep -E 'WARN|ERROR|floor: ' |
        grep -v 'pgvisor::advice_log' >"$WORK/$log.problems" || true
    if [ -s "$WORK/$log.problems" ]; then
        say "$log logged $(wc -l <"$WORK/$log.problems") warning or error lines (besides advice) during the run; the last ones:"
        tail -n 5 "$WORK/$log.problems" >&2
    fi
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+d", a - b }'; }
tps() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }
# verdict MARGIN TEXT: PASS when MARGIN >= 0, else MISS; then TEXT.
verdict() { awk -v m="$1" -v t="$2" 'BEGIN { printf "%s %s", (m >= 0 ? "PASS" : "MISS"), t }'; }
is_one_client() { [ -n "${P50[$1,direct]:-}" ]; }

CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- proxy protocol advisor bench Cargo.toml Cargo.lock 2>/dev/null ||
    COMMIT+=" (with uncommitted changes)"

passed=0 checked=0 SHARE_MARGINS=()
{
    echo "# Benchmarks: pgvisor against direct, PgBouncer and a bare forwarder"
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
    echo "- PostgreSQL: $("$PG_BINDIR/postgres" --version | sed 's/^postgres (PostgreSQL) //') (fsync=off, shared_buffers=256MB, no TLS), pgbench scale $SCALE"
    echo "- PgBouncer: $("$PGBOUNCER" --version | head -n 1 | sed 's/^[Pp]g[Bb]ouncer //'), pool_mode=session"
    echo "- pgvisor: commit $COMMIT, release build, **default flags**: only \`--upstream\`, \`--listen\`, \`--admin\` (forwarding loops: $WORKERS)"
    echo "- floor: \`bench/src/bin/floor.rs\`, a bare forwarder (tokio \`copy_bidirectional\`, no parsing) with pgvisor's default forwarding loops ($WORKERS)"
    echo "- floor again: a second process of the same floor, measured as a target of its own: what it makes over the floor is this run's noise, not a property of either"
    echo "- Each target, each row: $ROUNDS rounds of \`pgbench -T $ROUND_SECONDS -j min(c,2)\`, the ${#TARGETS[@]} targets taking turns within each round (order reversed every other round); TPS is the rounds' mean, CPU per transaction and latency percentiles are over all rounds. Over TCP on 127.0.0.1, libpq defaults (\`sslmode=prefer\`; nobody offers TLS) but \`PGGSSENCMODE=disable\`; client, proxies and server share the machine's CPUs."
    echo "- Load average (1 min) when measuring began and ended: $LOAD_BEFORE, $LOAD_AFTER. The benchmark itself keeps about 2 to 3 processes busy; well above that, other work competed and the numbers are noise."
    echo "- ORM-like script: \`$ORM_SCRIPT\`, 50 rows of 10 columns per transaction."
    echo
    echo "## Throughput"
    echo
    echo "TPS, and in parentheses the ratio to direct (1.000 = no loss); then pgvisor's TPS over the floor's and over PgBouncer's, and the second floor's over the first's (the same proxy twice: any distance from 1.000 is noise)."
    echo
    echo "| Workload | pgbench | direct | pgvisor | PgBouncer | floor | pgvisor/floor | pgvisor/PgBouncer | floor again/floor |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for i in "${!ROWS[@]}"; do
        d=${TPS[$i,direct]} v=${TPS[$i,pgvisor]} b=${TPS[$i,pgbouncer]} f=${TPS[$i,floor]} f2=${TPS[$i,floor2]}
        # shellcheck disable=SC2016 # the backticks are markdown
        printf '| %s | `%s` | %s | %s (%s) | %s (%s) | %s (%s) | %s | %s | %s |\n' "${ROWS[$i]%%|*}" "${ROWS[$i]#*|}" \
            "$(tps "$d")" "$(tps "$v")" "$(ratio "$v" "$d")" "$(tps "$b")" "$(ratio "$b" "$d")" \
            "$(tps "$f")" "$(ratio "$f" "$d")" "$(ratio "$v" "$f")" "$(ratio "$v" "$b")" "$(ratio "$f2" "$f")"
    done
    echo
    echo "## Latency at one client"
    echo
    echo "Per-transaction latency from \`pgbench -l\`, in µs; in parentheses the latency added over direct."
    echo
    echo "| Workload | direct p50 | direct p99 | pgvisor p50 | pgvisor p99 | PgBouncer p50 | PgBouncer p99 | floor p50 | floor p99 |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for i in "${!ROWS[@]}"; do
        is_one_client "$i" || continue
        line="| ${ROWS[$i]%%|*} | ${P50[$i,direct]} | ${P99[$i,direct]}"
        for t in "${PROXIES[@]}"; do
            line+=" | ${P50[$i,$t]} ($(added "${P50[$i,$t]}" "${P50[$i,direct]}"))"
            line+=" | ${P99[$i,$t]} ($(added "${P99[$i,$t]}" "${P99[$i,direct]}"))"
        done
        echo "$line |"
    done
    echo
    echo "## CPU per transaction"
    echo
    echo "Each proxy process's user + system CPU time (\`/proc/PID/stat\`, all threads; $CLK_TCK ticks a second) over its run, divided by the transactions pgbench processed, in µs; in parentheses user + system apart (system time is the kernel's work for the process's sockets: about the same for every proxy)."
    echo
    echo "| Workload | pgvisor | PgBouncer | floor | pgvisor − floor |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for i in "${!ROWS[@]}"; do
        printf '| %s | %s | %s | %s | %s |\n' "${ROWS[$i]%%|*}" \
            "$(cpu_cell "$i" pgvisor)" "$(cpu_cell "$i" pgbouncer)" "$(cpu_cell "$i" floor)" \
            "$(awk -v a="${CPU_US[$i,pgvisor]}" -v b="${CPU_US[$i,floor]}" 'BEGIN { printf "%+.1f", a - b }')"
    done
    echo
    echo "## Each proxy's busiest thread"
    echo
    echo "Per transaction, in µs: the time the proxy's busiest thread ran and, after the +, the time it was ready to run but waited for a CPU (\`/proc/PID/task/TID/schedstat\`, the thread that ran longest in each round, summed over the rounds, connection set-up included); in parentheses the share of the run's time it ran or waited, (run + wait) × TPS. pgvisor and the floor spread sessions over $WORKERS forwarding loop(s), a thread each; PgBouncer forwards on one. A share near 1 means that thread is what the row waits for."
    echo
    echo "| Workload | pgvisor | PgBouncer | floor |"
    echo "| --- | ---: | ---: | ---: |"
    for i in "${!ROWS[@]}"; do
        line="| ${ROWS[$i]%%|*}"
        for t in "${PROXIES[@]}"; do
            if [ -n "${BUSY_RUN_US[$i,$t]:-}" ]; then
                # The share of the run's time the thread ran or waited to run.
                busy=$(awk -v r="${BUSY_RUN_US[$i,$t]}" -v w="${BUSY_WAIT_US[$i,$t]}" -v tps="${TPS[$i,$t]}" \
                    'BEGIN { printf "%.2f", (r + w) * tps / 1e6 }')
                line+=" | ${BUSY_RUN_US[$i,$t]} + ${BUSY_WAIT_US[$i,$t]} ($busy)"
            else
                line+=" | n/a"
            fi
        done
        echo "$line |"
    done
    echo
    echo "## Targets"
    echo
    echo "Per row: pgvisor's TPS ratio to direct at least PgBouncer's; pgvisor's TPS at least $FLOOR_SHARE × the floor's;"
    echo "at one client, pgvisor's added p50 latency at most PgBouncer's. The margin is how far past (+) or short of (−) the target."
    echo
    echo "| Workload | pgvisor ratio ≥ PgBouncer ratio | pgvisor ≥ $FLOOR_SHARE × floor | c=1: pgvisor added p50 ≤ PgBouncer's |"
    echo "| --- | --- | --- | --- |"
    for i in "${!ROWS[@]}"; do
        d=${TPS[$i,direct]} v=${TPS[$i,pgvisor]} b=${TPS[$i,pgbouncer]} f=${TPS[$i,floor]}
        rv=$(ratio "$v" "$d") rb=$(ratio "$b" "$d") rf=$(ratio "$v" "$f")
        m1=$(awk -v a="$rv" -v b="$rb" 'BEGIN { printf "%+.3f", a - b }')
        m2=$(awk -v a="$rf" -v s="$FLOOR_SHARE" 'BEGIN { printf "%+.3f", a - s }')
        c1=$(verdict "$m1" "$rv vs $rb ($m1)") c2=$(verdict "$m2" "$rf of floor ($m2)") c3="n/a"
        checked=$((checked + 2))
        [[ $c1 == PASS* ]] && passed=$((passed + 1))
        [[ $c2 == PASS* ]] && passed=$((passed + 1))
        # Each throughput verdict's margin as a share of what it compared, like the noise below.
        SHARE_MARGINS+=("$(awk -v v="$v" -v b="$b" 'BEGIN { printf "%.3f", v / b - 1 }')")
        SHARE_MARGINS+=("$(awk -v m="$m2" -v s="$FLOOR_SHARE" 'BEGIN { printf "%.3f", m / s }')")
        if is_one_client "$i"; then
            av=$((${P50[$i,pgvisor]} - ${P50[$i,direct]})) ab=$((${P50[$i,pgbouncer]} - ${P50[$i,direct]}))
            m3=$((ab - av))
            c3=$(verdict "$m3" "$(printf '%+d µs vs %+d µs (%+d µs)' "$av" "$ab" "$m3")")
            checked=$((checked + 1))
            [[ $c3 == PASS* ]] && passed=$((passed + 1))
        fi
        printf '| %s | %s | %s | %s |\n' "${ROWS[$i]%%|*}" "$c1" "$c2" "$c3"
    done
    echo
    echo "$passed of $checked targets met."
    echo
    # The run's noise: how far the same proxy, run twice, landed apart in the worst row.
    noise=$(for i in "${!ROWS[@]}"; do echo "${TPS[$i,floor2]} ${TPS[$i,floor]}"; done |
        awk '{ d = $1 / $2 - 1; if (d < 0) d = -d; if (d > n) n = d } END { printf "%.3f", n }')
    read -r close_misses close_passes < <(printf '%s\n' "${SHARE_MARGINS[@]}" |
        awk -v n="$noise" '$1 < 0 && -$1 <= n { m++ } $1 >= 0 && $1 <= n { p++ } END { print m + 0, p + 0 }')
    echo "Noise: the second floor's throughput differed from the first's by up to $noise (as a share, worst row; the two run at the two ends of each round). Of the ${#SHARE_MARGINS[@]} throughput verdicts, $((close_misses + close_passes)) were decided by no more than that: $close_misses misses and $close_passes passes."
} >"$WORK/report.md"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/report.md" "$OUT"
cat "$WORK/report.md"
say "written to $OUT"
