#!/bin/sh
# cutover.sh - run on the OLD server: stop its services and forward every
# connection to the NEW server, so clients whose DNS still says "old" keep
# working while the A records move. This is the forwarding script of the
# source post ("zero downtime" server migration with socat), with two fixes,
# and one addition: IPv6 clients are forwarded too (the post forwarded IPv4
# only, so every IPv6 client still reached the stopped old server).
#
#   cutover.sh NEWIP OLDIP                         the whole cutover, IPv4 only (as the post)
#   cutover.sh NEWIP OLDIP NEWIP6 OLDIP6           the whole cutover, both families
#   cutover.sh --forward PORT TARGETIP [TPORT]     (re)start one port's forward; an IPv6
#                                                  TARGETIP forwards OLDIP6's port (set OLDIP6)
#   cutover.sh --tunnel NEWIP                      (re)start the MySQL ssh tunnel
#   cutover.sh --socket                            (re)start the socket -> tunnel relay
#
# Every helper process is started detached (setsid, stdin from /dev/null,
# output to its own log) and leaves its PID in $RUN_DIR, so it can be
# stopped or checked later without ever killing anything by name.
set -eu

PORTS="110 995 143 993 25 465 587 80 3306"
SOCKET=/run/mysqld/mysqld.sock
TUNNEL_PORT=3307
RUN_DIR=/run/cutover
LOG_DIR=${CUTOVER_LOG_DIR:-/run/cutover}
mkdir -p "$RUN_DIR" "$LOG_DIR"

# Start "$@" detached; record its PID as $RUN_DIR/$name.pid.
start_detached() {
    name=$1
    shift
    setsid "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
    echo $! >"$RUN_DIR/$name.pid"
}

# A stopped daemon can linger as a zombie until init reaps it: that counts as stopped.
running() {
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case $state in Z*) return 1 ;; esac
}

stop_pidfile() {
    name=$1
    pidfile=$2
    [ -s "$pidfile" ] || return 0
    pid=$(tr -d ' \n' <"$pidfile") # Postfix pads its PID with spaces
    if kill "$pid" 2>/dev/null; then
        echo "Stopping $name (pid $pid)..."
        # The post used `service $SERVICE stop`, which also waits for the exit.
        i=0
        while running "$pid" && [ $i -lt 150 ]; do
            sleep 0.1
            i=$((i + 1))
        done
    fi
}

start_tunnel() {
    newip=$1
    # Fix 1: the post ran `ssh $NEWIP -L 3307:localhost:3306 &`. Backgrounded
    # without -N, ssh starts a remote shell, which reads EOF and exits within
    # seconds, taking the tunnel with it. -N runs no remote command; with
    # ExitOnForwardFailure a port already in use is an error, not a silent
    # ssh session without its tunnel.
    #
    # The far end connects to localhost:3306 ON THE NEW SERVER, so MariaDB
    # sees 127.0.0.1 -> 'localhost' and users granted only @localhost still
    # log in (this is why the post tunnels instead of forwarding 3306 directly).
    start_detached tunnel ssh -N -o ExitOnForwardFailure=yes -o ServerAliveInterval=10 \
        -L "$TUNNEL_PORT:localhost:3306" "root@$newip"
    i=0
    until ss -Hltn "sport = :$TUNNEL_PORT" | grep -q LISTEN; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! running "$(cat "$RUN_DIR/tunnel.pid")"; then
            echo "ssh tunnel to $newip did not come up; see $LOG_DIR/tunnel.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

start_forward() {
    port=$1
    target=$2
    target_port=${3:-$1}
    case $target in
    *:*)
        # IPv6: the same forward, from the old IPv6 address to the new one.
        echo "Starting socat on port $port -> [$target]:$target_port (IPv6)..."
        start_detached "forward6-$port" socat \
            "TCP6-LISTEN:$port,bind=[$OLDIP6],fork,reuseaddr" \
            "TCP6:[$target]:$target_port,connect-timeout=5"
        ;;
    *)
        echo "Starting socat on port $port -> $target:$target_port..."
        # Fix 2: the post's `socat TCP-LISTEN:$PORT,fork` has no reuseaddr, so a
        # restart fails with EADDRINUSE while old connections sit in TIME_WAIT.
        # Binding to the old IP (not 0.0.0.0) leaves localhost free, e.g. for
        # the tunnel's own listener.
        start_detached "forward-$port" socat \
            "TCP-LISTEN:$port,bind=$OLDIP,fork,reuseaddr" "TCP:$target:$target_port,connect-timeout=5"
        ;;
    esac
}

# Wait until ADDRESS:PORT listens (ADDRESS as ss prints it: [v6] in brackets).
wait_listening() {
    i=0
    until ss -Hltn "sport = :$2" | grep -qF " $1:$2 "; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "forward for $1:$2 is not listening" >&2; return 1; }
        sleep 0.05
    done
}

# Applications on this host keep using the socket: hand it to the tunnel.
start_socket() {
    start_detached mysql-socket socat \
        "unix-listen:$SOCKET,fork,reuseaddr,unlink-early,unlink-close,user=mysql,group=mysql,mode=777" \
        "TCP:localhost:$TUNNEL_PORT"
    i=0
    until ss -Hlx | grep -qF " $SOCKET "; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "socket relay $SOCKET did not come up" >&2; return 1; }
        sleep 0.05
    done
}

case "${1:-}" in
--socket)
    start_socket
    exit 0
    ;;
--forward)
    case $3 in
    *:*) OLDIP6=${OLDIP6:?set OLDIP6} ;;
    *) OLDIP=${OLDIP:?set OLDIP} ;;
    esac
    start_forward "$2" "$3" "${4:-$2}"
    exit 0
    ;;
--tunnel)
    start_tunnel "$2"
    exit 0
    ;;
esac

NEWIP=${1:?usage: cutover.sh NEWIP OLDIP [NEWIP6 OLDIP6]}
OLDIP=${2:?usage: cutover.sh NEWIP OLDIP [NEWIP6 OLDIP6]}
# Optional: the IPv6 pair. Without it, IPv6 clients of the old server are NOT forwarded.
NEWIP6=${3:-}
OLDIP6=${4:-}

# Stop services on this host (by their PID files: there is no init here).
stop_pidfile dovecot /run/dovecot/master.pid
stop_pidfile postfix /var/spool/postfix/pid/master.pid
stop_pidfile apache2 /run/apache2/apache2.pid
stop_pidfile mariadb /run/mysqld/mysqld.pid

# Some cleanup: the old server's socket must not linger.
rm -f "$SOCKET"

# Map the new server's MySQL to localhost:3307 (key login to root@NEWIP).
start_tunnel "$NEWIP"

start_socket

# Map ports from each service to the new host.
for PORT in $PORTS; do
    start_forward "$PORT" "$NEWIP"
done
# And the same for IPv6 clients, when the IPv6 pair was given.
if [ -n "$NEWIP6" ]; then
    for PORT in $PORTS; do
        start_forward "$PORT" "$NEWIP6"
    done
fi

# socat binds in the background: wait until every port listens again.
for PORT in $PORTS; do
    wait_listening "$OLDIP" "$PORT" || exit 1
    if [ -n "$NEWIP6" ]; then
        wait_listening "[$OLDIP6]" "$PORT" || exit 1
    fi
done
echo "All ports forwarded from $OLDIP to $NEWIP."
if [ -n "$NEWIP6" ]; then
    echo "All ports forwarded from $OLDIP6 to $NEWIP6."
else
    echo "IPv4 only: nothing forwards the old server's IPv6 clients."
fi
