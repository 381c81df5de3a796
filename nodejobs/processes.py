"""``Processes``: launch, find, stop and list job processes, and fold their ends into the ``JobDB``."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime, timezone

import psutil

from .errors import DatabaseError
from .jobdb import JobDB
from .logs import remove_if_exists
from .preflight import check_arguments, startup_problem
from .reaper import Reaper
from .records import JobRecord, JobStatus, validate_job_id
from .supervise import LocalBackend, boot_id

log = logging.getLogger(__name__)

S = JobStatus
LOST_REASON = "the supervisor ended without recording an exit code (killed, or the machine restarted)"
REBOOT_REASON = "the machine restarted while the job was active"
LAUNCHER_LOST_REASON = "the process starting the job ended before the job started"
NOT_STARTED_REASON = "stopped before it started"
START_TIMEOUT = 300.0  # a start not completed in this time is given up (its launcher hung or failed)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def final_status(current: str | None, exit_code: int | None) -> str:
    """The terminal status of a job that was ``current`` and ended with ``exit_code``."""
    if current == S.c_stopping:
        return S.c_stopped
    if exit_code == 0:
        return S.c_finished
    return S.c_failed_start if current == S.c_starting else S.c_failed


class Processes:
    """Process control for one ``JobDB``: launch, find, stop, list, and the reaper thread."""

    def __init__(
        self,
        job_db: JobDB,
        startup_window: float = 0.01,
        grace: float = 3.0,
        reaper: bool = True,
        backend: LocalBackend | None = None,
    ) -> None:
        self.job_db = job_db
        self.startup_window = startup_window
        self.grace = grace
        self.backend = backend or LocalBackend()
        self.reaper = Reaper(self._on_exit) if reaper else None
        # Exit codes the reaper saw but the database could not take yet (e.g. disk full): (id, pid) -> code
        self._reaped: dict[tuple[str, int], int] = {}

    # -- launching -------------------------------------------------------------------------------

    def run(
        self,
        command: str | Sequence[str],
        job_id: str,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        logdir: str | None = None,
        logfile: str | None = None,
        *,
        replace: bool = True,
    ) -> JobRecord:
        """Start ``command`` as job ``job_id`` (the id must be free or its job ended); return the record.

        With ``replace=False`` an id that exists at all is refused (``JobExistsError``).
        """
        validate_job_id(job_id)
        shell = isinstance(command, str)
        argv = ["/bin/sh", "-c", command] if shell else [os.fspath(a) for a in command]  # type: ignore[union-attr]
        if not argv or not argv[-1 if shell else 0]:
            raise ValueError("empty command")
        cwd = os.path.abspath(os.path.expanduser(cwd)) if cwd else os.getcwd()
        envs = {str(k): str(v) for k, v in (envs or {}).items()}
        check_arguments(argv, envs, cwd)
        env = {**os.environ, **envs, "NODEJOBS_JOB_ID": job_id}
        launcher_pid, launcher_start = self.backend.identity()
        record = JobRecord(
            self_id=job_id,
            status=S.c_starting,
            command=command if shell else shlex.join(argv),
            shell=shell,
            cwd=cwd,
            dirname=self.job_db.db_path,
            logdir=os.path.abspath(logdir) if logdir else self.job_db.logdir,
            logfile=validate_job_id(logfile) if logfile else job_id,
            env_keys=",".join(sorted(envs)) or None,
            started_at=_now(),
            boot_id=boot_id(),
            launcher_pid=launcher_pid,
            launcher_start=launcher_start,
        )
        self.refresh(self.job_db.get(job_id))  # a stale "running" record must not block the id
        self.job_db.claim(record, replace)  # raises JobExistsError if a live job holds the id
        try:
            return self._start(record, argv, shell, cwd, env)
        except BaseException as exc:  # e.g. KeyboardInterrupt: never leave it "starting" (if not launched)
            reason = f"the start was interrupted ({exc!r})"
            fields = {"status": S.c_failed_start, "reason": reason, "ended_at": _now()}
            try:
                self.job_db.update_if_active(job_id, None, fields, S.c_starting, record.started_at)
            except Exception:
                log.exception("job %s: cannot record the interrupted start", job_id)
            raise

    def _start(
        self, record: JobRecord, argv: list[str], shell: bool, cwd: str, env: dict[str, str]
    ) -> JobRecord:
        """Launch a claimed record's processes; the payload starts only once the database knows them."""
        job_id = record.self_id
        try:
            os.makedirs(record.logdir, mode=0o700, exist_ok=True)
        except OSError as exc:
            return self._fail_start(record, f"cannot create log directory {record.logdir}: {exc.strerror}")
        problem = startup_problem(argv, shell, cwd, env)
        if problem:
            return self._fail_start(record, problem)
        out_path, err_path = self.job_db.log_paths(record)
        try:
            launched = self.backend.launch(argv, env, cwd, out_path, err_path, self.job_db.exit_path(record))
        except (OSError, ValueError) as exc:
            return self._fail_start(record, f"cannot start: {getattr(exc, 'strerror', None) or exc}")
        ids = dict(
            supervisor_pid=launched.supervisor_pid,
            supervisor_start=launched.supervisor_start,
            last_pid=launched.pid,
            pid_start=launched.pid_start,
        )
        recorded = False
        try:
            recorded = self.job_db.update_if_active(job_id, None, ids, S.c_starting, record.started_at)
        finally:
            launched.release(start=recorded)
        if self.reaper is not None:
            self.reaper.watch(job_id, launched.popen)
        if not recorded:  # a stop came first (or the start was given up as lost): the payload never ran
            stopped = {"status": S.c_stopped, "reason": NOT_STARTED_REASON, "ended_at": _now()}
            self.job_db.update_if_active(job_id, None, stopped, S.c_stopping, record.started_at)
            return self.job_db.get(job_id)  # type: ignore[return-value]
        record.update(ids)
        ended = False
        try:
            ended = self.backend.wait(
                launched.supervisor_pid, launched.supervisor_start, record.boot_id, self.startup_window
            )
        finally:  # even if interrupted now, the payload was released: it runs
            if not ended:
                self.job_db.update_if_active(
                    job_id, launched.supervisor_pid, {"status": S.c_running}, only_status=S.c_starting
                )
        return self.refresh(self.job_db.get(job_id))  # type: ignore[arg-type]

    def _fail_start(self, record: JobRecord, reason: str) -> JobRecord:
        """Record that the job could not start; its logs are replaced by the reason (best effort)."""
        out_path, err_path = self.job_db.log_paths(record)
        try:
            remove_if_exists(out_path)
            remove_if_exists(self.job_db.exit_path(record))
            with open(os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(f"nodejobs: {reason}\n")
        except OSError as exc:
            log.warning("job %s: cannot write its error log %s: %s", record.self_id, err_path, exc)
        fields = {"status": S.c_failed_start, "reason": reason, "ended_at": _now()}
        self.job_db.update_if_active(record.self_id, None, fields, started_at=record.started_at)
        return self.job_db.get(record.self_id)  # type: ignore[return-value]

    # -- state -----------------------------------------------------------------------------------

    def refresh(self, record: JobRecord | None) -> JobRecord | None:
        """Bring an active record up to date with its processes; ended records are returned as is."""
        if record is None or not record.is_active:
            return record
        if record.supervisor_pid is None:
            return self._refresh_unlaunched(record)
        exit_path = self.job_db.exit_path(record)
        ended = self.backend.exit_status(exit_path, record.supervisor_pid)
        if ended is None:
            if self.backend.alive(record.supervisor_pid, record.supervisor_start, record.boot_id):
                return self._promote_orphaned_start(record)
            ended = self.backend.exit_status(exit_path, record.supervisor_pid)  # it may have just written
        reaped = self._reaped.get((record.self_id, record.supervisor_pid))
        if ended is None and reaped is not None:  # the exit file could not be written; the reaper knows
            ended = (reaped, _now())
        if ended is None:
            if self.backend.alive(record.last_pid, record.pid_start, record.boot_id):
                return record  # supervisor gone but the payload still runs: its end is not knowable
            reason = REBOOT_REASON if record.boot_id != boot_id() else LOST_REASON
            fields = {"status": final_status(record.status, 1), "reason": reason, "ended_at": _now()}
        else:
            code, ended_at = ended
            if record.started_at is not None:  # file times are coarse: never end before the start
                ended_at = max(ended_at, record.started_at)
            fields = {"status": final_status(record.status, code), "exit_code": code, "ended_at": ended_at}
            if fields["status"] == S.c_failed_start:
                fields["reason"] = f"exited with code {code} during startup; see its error log"
        same_run = (record.self_id, record.supervisor_pid)
        try:
            folded = self.job_db.update_if_active(*same_run, fields, only_status=record.status)
        except DatabaseError as exc:  # e.g. disk full: report the end now, record it when writing works
            log.warning("job %s ended but its record cannot be updated: %s", record.self_id, exc)
            return JobRecord.trusted({**record, **fields})
        self._reaped.pop(same_run, None)  # type: ignore[arg-type]
        if folded:
            log.debug("job %s ended: %s", record.self_id, fields)
            return self.job_db.get(record.self_id)
        current = self.job_db.get(record.self_id)
        if (
            current is not None
            and current.is_active
            and current.status != record.status
            and current.supervisor_pid == record.supervisor_pid
        ):
            return self.refresh(current)  # its status moved on meanwhile (e.g. a stop began): fold again
        return current

    def _launcher_alive(self, record: JobRecord) -> bool:
        """Whether the process that started ``record`` may still complete its start."""
        if record.boot_id != boot_id():
            return False
        if record.launcher_pid is not None and not self.backend.alive(
            record.launcher_pid, record.launcher_start, record.boot_id
        ):
            return False
        age = (_now() - record.started_at).total_seconds() if record.started_at else float("inf")
        return age < START_TIMEOUT

    def _refresh_unlaunched(self, record: JobRecord) -> JobRecord:
        """A record whose processes are not known yet: if its launcher is gone, it never will be."""
        if self._launcher_alive(record):
            return record
        launcher = (record.launcher_pid, record.launcher_start, record.boot_id)
        reason = LAUNCHER_LOST_REASON
        if record.boot_id != boot_id():
            reason = REBOOT_REASON
        elif record.launcher_pid is None or self.backend.alive(*launcher):
            reason = f"the start did not complete within {START_TIMEOUT:.0f} s"
        fields = {"status": final_status(record.status, None), "reason": reason, "ended_at": _now()}
        self.job_db.update_if_active(record.self_id, None, fields, record.status, record.started_at)
        return self.job_db.get(record.self_id)  # type: ignore[return-value]

    def _promote_orphaned_start(self, record: JobRecord) -> JobRecord:
        """A started job whose launcher died before marking it running is running."""
        if record.status != S.c_starting or self._launcher_alive(record):
            return record
        if not self.backend.released(record.last_pid):
            return record  # never let go: its supervisor is about to exit without starting it
        running = {"status": S.c_running}
        self.job_db.update_if_active(record.self_id, record.supervisor_pid, running, S.c_starting)
        return self.job_db.get(record.self_id) or record

    def refresh_active(self) -> None:
        """Fold the end of every job recorded as active whose processes have ended."""
        for record in self.job_db.list_active():
            self.refresh(record)

    def _on_exit(self, job_id: str, popen: subprocess.Popen) -> None:
        key = (job_id, popen.pid)
        if popen.returncode is not None and popen.returncode >= 0:  # not killed: the payload's own code
            self._reaped[key] = popen.returncode
        self.refresh(self.job_db.get(job_id))
        stored = self.job_db.get(job_id)
        if stored is None or not stored.is_active or stored.supervisor_pid != popen.pid:
            self._reaped.pop(key, None)  # recorded (or replaced): no longer needed

    def wait(self, record: JobRecord, timeout: float | None) -> bool:
        """Wait for the job's supervisor (or, if it is gone, its payload) to exit; True if it has."""
        boot = record.boot_id
        if self.backend.alive(record.supervisor_pid, record.supervisor_start, boot):
            return self.backend.wait(record.supervisor_pid, record.supervisor_start, boot, timeout)
        return self.backend.wait(record.last_pid, record.pid_start, boot, timeout)

    # -- finding and stopping --------------------------------------------------------------------

    def find(self, job_id: str) -> psutil.Process | None:
        """The running payload process of ``job_id``, or None."""
        record = self.refresh(self.job_db.get(job_id))
        if record is None or not record.is_active:
            return None
        if not self.backend.alive(record.last_pid, record.pid_start, record.boot_id):
            return None
        proc = psutil.Process(record.last_pid)
        proc.job_id = job_id  # type: ignore[attr-defined]
        return proc

    def list(self) -> list[psutil.Process]:
        """Running payload processes of active jobs, each with a ``job_id`` attribute."""
        found = []
        for record in self.job_db.list_active():
            proc = self.find(record.self_id)
            if proc is not None:
                found.append(proc)
        return found

    def stop(self, job_id: str, grace: float | None = None) -> JobRecord | None:
        """SIGTERM the job's group and tree, SIGKILL after ``grace`` s; return the final record."""
        record = self.refresh(self.job_db.get(job_id))
        if record is None or not record.is_active:
            return record
        grace = self.grace if grace is None else grace
        self.job_db.update_if_active(job_id, record.supervisor_pid, {"status": S.c_stopping})
        record["status"] = S.c_stopping
        sup = (record.supervisor_pid, record.supervisor_start)
        payload = (record.last_pid, record.pid_start)
        boot = record.boot_id
        deadline = time.monotonic() + grace
        tree = self.backend.tree(*sup, boot) or self.backend.tree(*payload, boot)
        members = [proc for proc in tree if proc.pid != sup[0]]
        self.backend.signal_job(sup, payload, boot, signal.SIGTERM, spare_supervisor=False)
        ended = self.wait(record, grace)
        # Children that ignore SIGTERM can outlive the payload: they get what is left of the grace.
        survivors = self.backend.wait_gone(members, deadline - time.monotonic())
        if not ended or survivors:
            log.info("job %s survived SIGTERM for %.1f s; sending SIGKILL", job_id, grace)
            self.backend.signal_job(sup, payload, boot, signal.SIGKILL, spare_supervisor=True)
            self.backend.kill(survivors, signal.SIGKILL)
            ended = ended or self.wait(record, max(grace, 1.0))
            survivors = self.backend.wait_gone(survivors, max(grace, 1.0))
            if not ended or survivors:
                self.job_db.update_if_active(
                    job_id,
                    record.supervisor_pid,
                    {"status": S.c_failed_stop, "reason": "the job survived SIGTERM and SIGKILL"},
                )
                return self.job_db.get(job_id)
        return self.refresh(record)

    def close(self) -> None:
        """Stop the reaper thread."""
        if self.reaper is not None:
            self.reaper.close()
