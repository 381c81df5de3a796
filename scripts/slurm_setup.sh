#!/usr/bin/env bash
# Bring up a single-node Slurm cluster (slurmctld + slurmd + munged on this machine) for the Slurm
# tests, in CI or by hand. Debian 12, as root, without systemd: the daemons are started directly.
#   scripts/slurm_setup.sh          install if needed, configure, start (or keep if healthy)
#   scripts/slurm_setup.sh stop     end the daemons by their pid files
#   scripts/slurm_setup.sh status   report; exit 0 only if the node is up (idle, or busy with jobs)
# Facts a test needs are written to /etc/slurm/nodejobs-test.env.
set -euo pipefail

CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
STATE_DIR=/var/lib/slurm
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid
MUNGED_PID=/run/munge/munged.pid
JOBCOMP_FILE=$LOG_DIR/jobcomp.log
ENV_FILE=$CONF_DIR/nodejobs-test.env
PARTITION=debug
NODE=$(hostname -s)
DEADLINE_S=60

die() { echo "slurm_setup: $*" >&2; exit 1; }

# PID 1 here does not reap orphans, so a dead daemon can linger as a zombie: kill -0 is not enough.
alive() {
    local pid state
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

stop_one() {  # pidfile name: SIGTERM, up to 20 s, then SIGKILL
    local pidfile=$1 name=$2 pid i
    if alive "$pidfile"; then
        pid=$(cat "$pidfile"); kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do alive "$pidfile" || break; sleep 0.2; done
        if alive "$pidfile"; then echo "slurm_setup: $name ($pid) ignored SIGTERM, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
    fi
    rm -f "$pidfile"
}

stop_all() { stop_one "$SLURMD_PID" slurmd; stop_one "$CTLD_PID" slurmctld; stop_one "$MUNGED_PID" munged; }

node_state() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

# Up = both pid files name live processes, slurmd registered after its process started, and the node
# is usable: idle, or busy with jobs (a second run must not restart a cluster that others are using).
node_up() {
    alive "$CTLD_PID" && alive "$SLURMD_PID" || return 1
    scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
    local started registered
    started=$(date -d "$(ps -o lstart= -p "$(cat "$SLURMD_PID")")" +%s) || return 1
    registered=$(scontrol show node "$NODE" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
    [[ -n $registered && $registered != None ]] || return 1
    (( $(date -d "$registered" +%s) >= started - 1 )) || return 1
    [[ $(node_state) =~ ^(idle|mixed|allocated|completing|planned)$ ]]
}

fail() {  # message: show both daemon logs, then exit 1
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"; do echo "----- tail $f" >&2; tail -n 25 "$f" >&2 || true; done
    die "$*"
}

report() { echo "slurm: node $NODE $(node_state), partition $PARTITION, jobcomp file $JOBCOMP_FILE"; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
case "${1:-start}" in
    stop) stop_all; echo "slurm: stopped"; exit 0 ;;
    status)
        for d in "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID" "munged:$MUNGED_PID"; do
            if alive "${d#*:}"; then echo "${d%%:*}: running, pid $(cat "${d#*:}")"
            else echo "${d%%:*}: not running"; fi
        done
        if node_up; then report; exit 0; fi
        echo "slurm: node $NODE not up"; exit 1 ;;
    start) ;;
    *) die "usage: $0 [start|stop|status]" ;;
esac

export DEBIAN_FRONTEND=noninteractive
PKGS=(slurmctld slurmd slurm-client munge)
if ! dpkg-query -W -f='${Status}\n' "${PKGS[@]}" 2>/dev/null | grep -c 'ok installed' | grep -qx "${#PKGS[@]}"; then
    apt-get update -q
    apt-get install -y -q "${PKGS[@]}"
fi

# munge: Debian creates the key at install; make one if it is missing.
if [[ ! -s /etc/munge/munge.key ]]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
alive "$MUNGED_PID" || runuser -u munge -- munged
munge -n | unmunge >/dev/null || die "munge -n | unmunge failed (see /var/log/munge/munged.log)"

install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"
# RealMemory must not exceed what slurmd measures, or the node is drained ("Low RealMemory").
MEM_MB=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
# MinJobAge stays at its default (300 s): the backend must cope with Slurm forgetting ended jobs.
# ReturnToService=2 lets a node marked DOWN (e.g. slurmd was killed) return when slurmd registers.
NEW_CONF=$(cat <<EOF
# Written by scripts/slurm_setup.sh (nodejobs): single-node test cluster.
ClusterName=nodejobs
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_FILE
JobAcctGatherType=jobacct_gather/linux
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
NodeName=$NODE CPUs=$(nproc) RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
changed=0
if [[ "$(cat "$CONF_DIR/slurm.conf" 2>/dev/null)" != "$NEW_CONF" ]]; then
    printf '%s\n' "$NEW_CONF" >"$CONF_DIR/slurm.conf"; changed=1
fi
cat >"$ENV_FILE" <<EOF
SLURM_NODE=$NODE
SLURM_PARTITION=$PARTITION
SLURM_JOBCOMP_FILE=$JOBCOMP_FILE
SLURM_CONF=$CONF_DIR/slurm.conf
SLURMCTLD_LOG=$LOG_DIR/slurmctld.log
SLURMD_LOG=$LOG_DIR/slurmd.log
EOF

if [[ $changed -eq 0 ]] && node_up; then
    echo "slurm_setup: daemons already up and healthy"; report; exit 0
fi
stop_one "$SLURMD_PID" slurmd; stop_one "$CTLD_PID" slurmctld
begin=$SECONDS end=$((SECONDS + DEADLINE_S))
slurmctld || fail "slurmctld failed to start"
until scontrol ping 2>/dev/null | grep -q 'is UP'; do
    # Its pid file can take a moment to appear; after that a missing process means it died.
    alive "$CTLD_PID" || (( SECONDS - begin < 3 )) || fail "slurmctld exited at startup"
    (( SECONDS < end )) || fail "slurmctld not answering after ${DEADLINE_S}s"; sleep 0.2
done
slurmd || fail "slurmd failed to start"
until node_up; do
    (( SECONDS < end )) || fail "node $NODE not up after ${DEADLINE_S}s (state: $(node_state || true))"; sleep 0.2
done
report
