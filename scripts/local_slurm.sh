#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, from Debian's packages, with accounting (sacct).
#
#   scripts/local_slurm.sh up      install (first time), configure and start; idempotent
#   scripts/local_slurm.sh down    cancel jobs, stop every daemon it started
#   scripts/local_slurm.sh status  sinfo + what is running
#
# Needs root (it installs packages and writes /etc/slurm). Daemons run without systemd;
# their state, logs and PID files live under $SLURM_LOCAL_DIR (/var/tmp/initlab-slurm).
# shared/notes/slurm.md has what was seen on these machines and why each line is here.
set -euo pipefail

STATE=${SLURM_LOCAL_DIR:-/var/tmp/initlab-slurm}
HOST=$(hostname -s)
CLUSTER=initlab
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd slurm-wlm-mysql-plugin mariadb-server)

log() { echo "local_slurm: $*" >&2; }

pidfile() {  # mariadbd runs as mysql: its PID file lives in its own data folder
    if [ "$1" = mariadb ]; then echo "$STATE/mysql/mariadb.pid"; else echo "$STATE/$1.pid"; fi
}

running() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

wait_for() {  # wait_for <what> <seconds> <command...>
    local what=$1 seconds=$2
    shift 2
    for _ in $(seq $((seconds * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "timed out waiting for $what"
    return 1
}

install() {
    dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1 && return
    log "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key  # munged refuses otherwise
    mkdir -p /run/munge && chown munge:munge /run/munge
    if ! pgrep -x munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged
    fi
    wait_for munge 10 munge -n
}

start_mariadb() {
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if [ ! -d "$STATE/mysql/mysql" ]; then
        mkdir -p "$STATE/mysql" && chown mysql:mysql "$STATE/mysql"
        mariadb-install-db --user=mysql --datadir="$STATE/mysql" --skip-test-db >/dev/null
    fi
    if ! running mariadb; then
        # setsid: mariadbd does not daemonise itself; in its own session it outlives the shell
        # (or tool job) that started it, like the slurm daemons, which do.
        setsid mariadbd --user=mysql --datadir="$STATE/mysql" --skip-networking --socket=/run/mysqld/mysqld.sock \
            --pid-file="$(pidfile mariadb)" --log-error="$STATE/mysql/mariadb.log" </dev/null >/dev/null 2>&1 &
        wait_for mariadb 30 mariadb -u root -e "select 1"
    fi
    mariadb -u root -e "create database if not exists slurm_acct_db;"
}

write_configs() {
    local cpus mem
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -1)
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
    mem=$((mem - 1024))  # leave the OS a GiB
    mkdir -p /etc/slurm "$STATE"/{ctld,d}
    cat >/etc/slurm/slurm.conf <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem / cpus))
EnforcePartLimits=ALL
ReturnToService=2
KillWait=3
MailProg=/bin/true
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
    chmod 600 /etc/slurm/slurmdbd.conf  # slurmdbd refuses a readable one
}

up() {
    install
    start_munge
    start_mariadb
    local before
    before=$(cat /etc/slurm/slurm.conf 2>/dev/null || true)
    write_configs
    if [ "$before" != "$(cat /etc/slurm/slurm.conf)" ] && running slurmctld; then
        log "slurm.conf changed: restarting slurmctld and slurmd"
        stop_daemon slurmd
        stop_daemon slurmctld
    fi
    running slurmdbd || slurmdbd
    wait_for slurmdbd 30 sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
    running slurmctld || slurmctld
    wait_for slurmctld 30 scontrol ping
    running slurmd || slurmd -N "$HOST"
    wait_for "an idle node" 30 bash -c "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'"
    log "up: $(sinfo -h -o '%P %D %t %c CPUs %m MB' | head -1)"
}

stop_daemon() {
    local pid
    if running "$1" && pid=$(cat "$(pidfile "$1")" 2>/dev/null); then  # a daemon may remove it as it exits
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do running "$1" || break; sleep 0.1; done
    fi
    rm -f "$(pidfile "$1")"
}

down() {
    if running slurmctld; then
        scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        pkill -x slurmstepd 2>/dev/null || true  # steps outlive slurmd
    fi
    for daemon in slurmd slurmctld slurmdbd mariadb; do
        stop_daemon "$daemon"
    done
    pkill -x munged 2>/dev/null || true
    log "down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) sinfo; squeue ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
