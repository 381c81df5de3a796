"""Secrets: environment values never reach the database or the logs, and every file is private."""

import hashlib
import os
import secrets
import stat
import subprocess

import pytest
from reliability_support import PY, figure, run_cli

from nodejobs import Jobs

pytestmark = pytest.mark.reliability

HASH_IT = 'printf %s "$NJ_SECRET" | sha256sum'


def every_file(root: str) -> list[str]:
    return [os.path.join(parent, name) for parent, _, names in os.walk(root) for name in names]


def leaks(root: str, value: str) -> list[str]:
    """Files under ``root`` whose bytes contain ``value`` (plain, UTF-16 or hex: as SQLite might keep it)."""
    needles = [value.encode(), value.encode("utf-16-le"), value.encode().hex().encode()]
    found = []
    for path in every_file(root):
        with open(path, "rb") as f:
            data = f.read()
        if any(n in data for n in needles):
            found.append(path)
    return found


def modes(root: str) -> dict[str, str]:
    found = {root: oct(stat.S_IMODE(os.stat(root).st_mode))}
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(parent, name)
            found[path] = oct(stat.S_IMODE(os.lstat(path).st_mode))
    return found


def test_env_values_are_given_to_the_job_but_never_stored(tmp_path, capsys):
    db = str(tmp_path / "db")
    values = {
        "api": "s3cr3t-" + secrets.token_hex(16),
        "cli": "cli-s3cr3t-" + secrets.token_hex(16),
        "magic": "magic-s3cr3t-" + secrets.token_hex(16),
    }
    with Jobs(db) as jobs:
        jobs.run(HASH_IT, "api", envs={"NJ_SECRET": values["api"]})
        jobs.wait("api", timeout=10)
        jobs.rerun("api", without_env=True)  # values are not kept: the rerun does not see the secret
        assert jobs.wait("api", timeout=10).status == "finished"
        rerun_out = jobs.job_logs("api")[0]
    done = run_cli(db, "run", "--id", "cli", "-e", f"NJ_SECRET={values['cli']}", "--", HASH_IT)
    assert done.returncode == 0, done.stderr
    assert values["cli"] not in done.stdout + done.stderr

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "nodejobs_magics")
    try:
        shell.run_line_magic("config", f"JobMagics.db_path = {db!r}")
        shell.run_line_magic("job", f"run --id magic -e NJ_SECRET={values['magic']} -- sh -c '{HASH_IT}'")
        shell.run_cell_magic("job", f"magic-cell -e NJ_SECRET={values['magic']}", HASH_IT + "\n")
        jobs = shell.magics_manager.registry["JobMagics"].jobs
        for job_id in ("magic", "magic-cell"):
            assert jobs.wait(job_id, timeout=10).status == "finished"
    finally:
        shell.run_line_magic("unload_ext", "nodejobs_magics")
        shell.config.pop("JobMagics", None)
    capsys.readouterr()

    with Jobs(db) as jobs:
        expected = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in values.items()}
        assert jobs.job_logs("cli")[0].split()[0] == expected["cli"]  # the job did get the value
        assert jobs.job_logs("magic")[0].split()[0] == expected["magic"]
        assert jobs.job_logs("magic-cell")[0].split()[0] == expected["magic"]
        assert rerun_out.split()[0] == hashlib.sha256(b"").hexdigest()
        assert jobs.get_status("cli").env_keys == "NJ_SECRET"
        files = every_file(db)  # while the database is open, so its -wal and -shm files are there too
        assert {"jobs.db-wal", "jobs.db-shm"} <= {os.path.basename(f) for f in files}
        for value in values.values():
            assert leaks(db, value) == [], f"a secret value is stored in {leaks(db, value)}"
    figure(
        "secrets",
        f"{len(values)} secret values (API, CLI -e, %job -e and %%job -e) reached their jobs; found in 0 of "
        f"{len(files)} files under the database directory (jobs.db, -wal, -shm, logs, scripts)",
        capsys,
    )


@pytest.mark.parametrize("umask", [0o000, 0o022], ids=["umask-000", "umask-022"])
def test_database_logs_scripts_and_directories_are_private_whatever_the_umask(tmp_path, umask, capsys):
    db = str(tmp_path / "fresh" / "db")
    script = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from nodejobs import Jobs\n"
        "db = sys.argv[1]\n"
        "with Jobs(db) as jobs:\n"
        "    jobs.run('echo out; echo err >&2', 'plain')\n"
        "    jobs.run(['/nonexistent/program'], 'bad')\n"
        "    jobs.wait('plain', timeout=10)\n"
        "    jobs.run(['sleep', '30'], 'live')\n"
        "    shell = InteractiveShell.instance()\n"
        "    shell.run_line_magic('load_ext', 'nodejobs_magics')\n"
        "    shell.run_line_magic('config', f'JobMagics.db_path = {db!r}')\n"
        "    shell.run_cell_magic('job', 'cell --shell python', 'print(1)')\n"
        "    magics = shell.magics_manager.registry['JobMagics']\n"
        "    magics.jobs.wait('cell', timeout=10)\n"
        "    print('LISTING', sorted(__import__('os').listdir(db)), flush=True)\n"
        "    input()\n"  # hold the database open (-wal/-shm exist) while the parent checks
        "    jobs.stop('live', grace=1)\n"
    )
    proc = subprocess.Popen(
        [PY, "-c", script, db],
        umask=umask,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")},
    )
    try:
        listing = ""
        while not listing.startswith("LISTING"):
            listing = proc.stdout.readline()
            assert listing, "the child ended early"
        assert "jobs.db-wal" in listing and "jobs.db-shm" in listing, listing
        found = modes(db)
        names = {os.path.basename(p) for p in found}
        for needed in (
            "jobs.db",
            "jobs.db-wal",
            "jobs.db-shm",
            "logs",
            "plain_out.txt",
            "plain_errors.txt",
            "plain.exit",
            "bad_errors.txt",
            "live_out.txt",
            "cell_script.py",
        ):
            assert needed in names, (needed, sorted(names))
        loose = {p: m for p, m in found.items() if int(m, 8) & 0o077}
        assert loose == {}, f"readable by others: {loose}"
    finally:
        proc.communicate("\n", timeout=30)
    assert proc.returncode == 0
    figure(
        "file modes",
        f"umask {umask:03o}: {len(found)} paths (db dir, logs dir, jobs.db/-wal/-shm, logs, "
        "exit files, scripts) all owner-only (0600 / 0700)",
        capsys,
    )
