# The nodejobs supervisor of one local job (see local.py). Run by /bin/sh as
#   nodejobs-supervisor supervisor.sh ID EXIT_FILE RUN_ID GRACE KEEP PYTHON LIMIT ON_END PROGRAM [ARG...]
# with stdin a socket to the launcher. The payload reports its pid there and waits for "go", sent
# once the database knows the job; without it (the launcher died first) the program never starts.
# The payload becomes the program with exec (same pid), in a session of its own, with default signal
# dispositions whatever the launcher ignored, and NODEJOBS_RUN_ID marking every process it starts.
# If LIMIT is not 0, a timer sends the payload's group SIGTERM after LIMIT seconds (SIGKILL GRACE seconds
# later) and the exit file says "timeout". When it ends, its exit code and the CPU time of its tree
# (`times`) go to EXIT_FILE; then ON_END (a shell-quoted command, may be empty) runs detached in a session
# of its own, without the job's NODEJOBS_ variables; then, unless KEEP is 1, PYTHON ends what is left of the job (SIGTERM, SIGKILL after GRACE).
trap : TERM INT HUP QUIT
id=$1 exit_file=$2 run_id=$3 grace=$4 keep=$5 python=$6 limit=$7 on_end=$8
shift 8
exec 3<&0 0</dev/null
/bin/sh -c 'echo $$ >&3; IFS= read -r go <&3 || go=; exec 3>&-
if [ "$go" != go ]; then
  (umask 077; echo "125 $PPID 0" > "$1")
  echo "nodejobs: not started: the process starting the job ended first" >&2
  exit 125
fi
NODEJOBS_RUN_ID=$2; export NODEJOBS_RUN_ID; shift 2
exec setsid env --default-signal=INT,QUIT,HUP,TERM "$@"' nodejobs-payload "$exit_file" "$run_id" "$@" &
pid=$!
exec 3<&-
timer=
if [ "$limit" != 0 ]; then
  (
    trap 'kill "$s" 2>/dev/null; exit 1' TERM
    sleep "$limit" & s=$!; wait "$s"
    trap 'kill "$s" 2>/dev/null; exit 3' TERM
    kill -TERM "-$pid" 2>/dev/null
    sleep "$grace" & s=$!; wait "$s"
    kill -KILL "-$pid" 2>/dev/null
    exit 3
  ) &
  timer=$!
fi
while :; do
  wait "$pid"
  rc=$?
  [ "$rc" -gt 128 ] && kill -0 "$pid" 2>/dev/null && continue  # a signal to us interrupted the wait
  break
done
ended=
if [ -n "$timer" ]; then
  kill "$timer" 2>/dev/null
  wait "$timer"
  [ $? = 3 ] && ended=timeout
fi
[ -s "$exit_file" ] && exit "$rc"  # never started: the payload wrote why
umask 077
{ echo "$rc $$ 1 $ended"; times; } > "$exit_file"
if [ -n "$on_end" ]; then
  env -u NODEJOBS_RUN_ID -u NODEJOBS_JOB_ID -u NODEJOBS_SLOT setsid /bin/sh -c "$on_end" </dev/null >/dev/null 2>&1 &
fi
[ "$keep" = 1 ] && exit "$rc"
if kill -0 -- "-$pid" 2>/dev/null || grep -qzsF -- "NODEJOBS_RUN_ID=$run_id" /proc/[0-9]*/environ; then
  exec "$python" -m nodejobs.backends.leftovers "$pid" "$run_id" "$grace" "$rc"
fi
exit "$rc"
