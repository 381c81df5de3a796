"""End to end in real ipykernels started with jupyter_client: the magics, the dashboard's comm updates
while a cell runs, and a job that outlives a SIGKILLed kernel."""

import os
import queue
import signal
import subprocess
import time

import pytest
from jupyter_client import KernelManager

from conftest import pid_alive, wait_until
from nodejobs import JobDB, Jobs

pytestmark = pytest.mark.kernel

TIMEOUT = 60


class Kernel:
    """A kernel started for a test; ``run`` executes code and collects what the kernel sent back."""

    def __init__(self, tmp_path, ipython_dir):
        env = {**os.environ, "IPYTHONDIR": str(ipython_dir), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env, cwd=str(tmp_path))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=TIMEOUT)

    def run(self, code, timeout=TIMEOUT, on_output=None):
        """``{"stdout", "stderr", "results": [text/plain...], "reply"}`` of executing ``code``.

        ``on_output(seen)`` is called after each message, while the code still runs.
        """
        seen = {"stdout": "", "stderr": "", "results": []}

        def collect(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                seen[content["name"]] += content["text"]
            elif kind in ("execute_result", "display_data"):
                seen["results"].append(content["data"].get("text/plain", ""))
            elif kind == "error":
                seen["stderr"] += "\n".join(content["traceback"])
            if on_output is not None:
                on_output(seen)

        seen["reply"] = self.client.execute_interactive(code, timeout=timeout, output_hook=collect)["content"]
        return seen

    def pid(self):
        return int(self.run("import os; print(os.getpid())")["stdout"])

    def shutdown(self):
        try:
            self.client.stop_channels()
        finally:
            self.manager.shutdown_kernel(now=True)


def preloaded_ipython_dir(ipython_dir, db_path):
    """An IPython directory whose kernels load the extension on ``db_path`` at start (``ipython_dir``)."""
    profile = ipython_dir / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(
        f'c.InteractiveShellApp.extensions = ["nodejobs_magics"]\nc.JobMagics.db_path = {db_path!r}\n'
    )
    return ipython_dir


@pytest.fixture
def kernels(tmp_path):
    started = []

    def start(ipython_dir=None):
        started.append(Kernel(tmp_path, ipython_dir or tmp_path / "ipython"))
        return started[-1]

    yield start
    for kernel in started:
        kernel.shutdown()


@pytest.fixture
def observer(db_path):
    """A ``Jobs`` in the test process on the kernels' database; stops what is left running."""
    jobs = Jobs(db_path, reaper=False)
    yield jobs
    for record in jobs.list_status().values():
        if record.is_active:
            jobs.stop(record.self_id, grace=0.2)
    jobs.close()


def test_magics_in_a_kernel(kernels, observer, db_path, tmp_path):
    kernel = kernels()
    setup = kernel.run(f"%load_ext nodejobs_magics\n%config JobMagics.db_path = {db_path!r}")
    assert setup["reply"]["status"] == "ok", setup
    started = kernel.run("rec = %job run --id k1 -- sh -c 'echo hello from k1; exec sleep 60'\nrec.status")
    assert started["results"] == ["'running'"] and "k1 running" in started["stdout"]

    listed = kernel.run(
        "df = %job list\nprint(type(df).__name__, df.loc['k1', 'status'], df['exit_code'].dtype)"
    )
    assert listed["stdout"] == "DataFrame running Int64\n"

    wait_until(lambda: "hello" in observer.job_logs("k1")[0], message="k1's output")
    assert kernel.run("%job logs k1")["stdout"] == "hello from k1\n"

    error = kernel.run("%job status nope")
    assert "UsageError: %job: no job 'nope'" in error["stderr"] and "Traceback" not in error["stderr"]

    interrupted = []

    def interrupt_once_streaming(seen):
        if "hello from k1" in seen["stdout"] and not interrupted:
            interrupted.append(True)
            kernel.manager.interrupt_kernel()

    followed = kernel.run("%job follow k1", on_output=interrupt_once_streaming)
    assert followed["stdout"] == "hello from k1\n[stopped following k1; the job keeps running]\n"
    assert followed["reply"]["status"] == "ok" and observer.get_status("k1").status == "running"

    stopped = kernel.run("r = %job stop k1 --grace 1\nr.status")
    assert stopped["results"] == ["'stopped'"]
    assert not pid_alive(observer.get_status("k1").last_pid)


def test_dashboard_updates_reach_the_frontend_while_a_cell_runs(kernels, observer, db_path, tmp_path):
    kernel = kernels()
    gate, unblock = tmp_path / "gate", tmp_path / "unblock"
    code = (
        f"%load_ext nodejobs_magics\n%config JobMagics.db_path = {db_path!r}\n"
        "%config JobMagics.refresh_interval = 0.1\n"
        f"%job run --id gated -- sh -c 'while [ ! -e {gate} ]; do sleep 0.02; done'\n"
        "dashboard = %job watch"
    )
    shown = kernel.run(code)
    assert any("JobDashboard" in text for text in shown["results"]), shown
    blocking = kernel.client.execute(
        f"import os, time\nwhile not os.path.exists({str(unblock)!r}): time.sleep(0.02)"
    )
    gate.touch()  # the kernel's job ends ...
    observer.run(["sleep", "30"], "late")  # ... and another process starts one
    deadline = time.monotonic() + TIMEOUT
    finished_seen = new_row_seen = cell_done = False
    while not (finished_seen and new_row_seen) and time.monotonic() < deadline:
        try:
            msg = kernel.client.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") == blocking and msg["msg_type"] == "status":
            cell_done = cell_done or msg["content"]["execution_state"] == "idle"
        state = msg["content"].get("data", {}).get("state", {}) if msg["msg_type"].startswith("comm") else {}
        finished_seen = finished_seen or "finished</span>" in str(state.get("value", ""))
        new_row_seen = new_row_seen or "nodejobs-row-late" in state.get("_dom_classes", ())
    # the widgets changed, and a row was added, while the cell was still running
    assert finished_seen and new_row_seen and not cell_done
    unblock.touch()
    reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == blocking and reply["content"]["status"] == "ok"
    assert kernel.run("dashboard.close(); print(dashboard.closed)")["stdout"] == "True\n"


def test_a_job_outlives_a_killed_kernel_and_the_next_kernel_finds_how_it_ended(
    kernels, observer, db_path, tmp_path
):
    gate = tmp_path / "gate"
    first = kernels()
    script = f"echo before; while [ ! -e {gate} ]; do sleep 0.02; done; echo after; exit 7"
    started = first.run(
        f"%load_ext nodejobs_magics\n%config JobMagics.db_path = {db_path!r}\n"
        f"%job run --id survivor -- sh -c '{script}'"
    )
    assert "survivor running" in started["stdout"], started
    wait_until(lambda: "before" in observer.job_logs("survivor")[0], message="the job's first line")
    os.kill(first.pid(), signal.SIGKILL)
    wait_until(lambda: not first.manager.is_alive(), message="the kernel to die")
    record = observer.get_status("survivor")
    assert record.status == "running" and pid_alive(record.last_pid)
    gate.touch()  # the job ends while no kernel is running

    second = kernels(preloaded_ipython_dir(tmp_path / "ipython2", db_path))
    found = second.run(
        "r = %job wait survivor --timeout 30\nprint(r.status, r.exit_code)\n%job logs survivor"
    )
    assert found["stdout"].endswith("failed 7\nbefore\nafter\n"), found


def _our_python_processes(db_path):
    """Command lines of Python processes working on ``db_path`` (a dispatcher, a kernel's helper)."""
    out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "python" in line and db_path in line]


def test_a_queue_filled_by_a_killed_kernel_still_runs_in_order_with_no_python_between_jobs(
    kernels, observer, db_path, tmp_path
):
    order = tmp_path / "order"
    kernel = kernels()
    filled = kernel.run(
        f"from nodejobs import Jobs\njobs = Jobs({db_path!r})\njobs.set_limit('serial', 1)\n"
        "for i in range(10):\n"
        f"    jobs.run(f'echo start {{i}} $(date +%s.%N) >> {order}; sleep 0.4; "
        f"echo end {{i}} $(date +%s.%N) >> {order}', f'q{{i}}', group='serial')\n"
        "print(sorted(r.status for r in jobs.list_status().values()))"
    )
    assert filled["stdout"] == str(["queued"] * 9 + ["running"]) + "\n", filled
    os.kill(kernel.pid(), signal.SIGKILL)
    wait_until(lambda: not kernel.manager.is_alive(), message="the kernel to die")
    db = JobDB(db_path)  # read the records only: nothing here may move the queue
    for i in range(10):
        def running_alone(i=i):
            started = order.exists() and f"start {i} " in order.read_text()
            return started and f"end {i} " not in order.read_text() and not _our_python_processes(db_path)

        wait_until(running_alone, timeout=30, message=f"job q{i} running with no Python process of ours")
    wait_until(lambda: db.get("q9").status != "running" or "end 9 " in order.read_text(), timeout=30)
    lines = [line.split() for line in order.read_text().splitlines()]
    assert [(kind, int(i)) for kind, i, _ in lines] == [(k, i) for i in range(10) for k in ("start", "end")]
    times = [float(t) for _, _, t in lines]
    assert times == sorted(times)  # each started after the one before it ended


def test_a_function_from_a_killed_kernel_gives_its_result_to_the_next_kernel(
    kernels, observer, db_path, tmp_path
):
    gate = tmp_path / "gate"
    first = kernels()
    defined = first.run(
        f"from nodejobs import Jobs\njobs = Jobs({db_path!r})\nimport os, time\n"
        "def slow_square(x):\n"
        "    print('working on', x)\n"
        f"    while not os.path.exists({str(gate)!r}):\n"
        "        time.sleep(0.01)\n"
        "    return {'square': x * x}\n"
        "def explode(message):\n"
        "    raise ValueError(message)\n"
        "print(jobs.submit(slow_square, 7).self_id, jobs.submit(explode, 'bad lr').self_id)"
    )
    assert defined["stdout"] == "slow_square-1 explode-1\n", defined
    wait_until(lambda: observer.job_logs("slow_square-1")[0] == "working on 7\n", timeout=TIMEOUT)
    os.kill(first.pid(), signal.SIGKILL)
    wait_until(lambda: not first.manager.is_alive(), message="the kernel to die")
    assert observer.get_status("slow_square-1").status == "running"
    gate.touch()  # the function returns while no kernel is running

    second = kernels()
    shown = second.run(
        f"%load_ext nodejobs_magics\n%config JobMagics.db_path = {db_path!r}\n%job result slow_square-1"
    )
    assert shown["results"] == ["{'square': 49}"], shown
    raised = second.run(
        f"from nodejobs import Jobs, FunctionError\njobs = Jobs({db_path!r})\n"
        "try:\n    jobs.result('explode-1', timeout=30)\n"
        "except FunctionError as exc:\n    print(repr(exc.exception))\n    print(exc.remote_traceback)"
    )
    assert raised["stdout"].startswith("ValueError('bad lr')\nTraceback (most recent call last):\n"), raised
    assert "in explode" in raised["stdout"] and raised["stdout"].endswith("ValueError: bad lr\n\n")
    assert observer.get_status("explode-1").status == "failed"
    magic = second.run("%job result explode-1")
    assert "in explode\nValueError: bad lr\n" in magic["stderr"]  # the remote traceback, then one line:
    assert magic["stderr"].endswith("UsageError: %job result: job 'explode-1' raised ValueError: bad lr\n")
