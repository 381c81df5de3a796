"""Hostile command lines: CLI and magic arguments with quotes, ``$``, backticks and bad ids, and bad
arguments to ``run()`` -- passed verbatim or refused, never interpreted, nothing written outside the db."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import PY, TRIED, figure, run_cli
from reliability_support import count_tried as _count
from reliability_support import inside as _inside
from reliability_support import tree as _tree

from nodejobs import Jobs, NodeJobsError

pytestmark = pytest.mark.reliability

COMMAND_WORDS = [
    "$(touch PWNED)",
    "`touch PWNED`",
    "; touch PWNED",
    "it's",
    '"quoted"',
    "$HOME",
    "a b",
    "\\n",
    "*",
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(
        st.sampled_from(COMMAND_WORDS)
        | st.text(
            st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), min_size=1, max_size=12
        ),
        min_size=1,
        max_size=4,
    ),
    value=st.sampled_from(COMMAND_WORDS),
)
def test_cli_arguments_with_quotes_and_dollars_are_passed_verbatim(tmp_path, words, value):
    _count("CLI command lines")
    db = str(tmp_path / "db")
    done = run_cli(
        db,
        "run",
        "--id",
        "verbatim",
        "-e",
        f"K={value}",
        "--",
        PY,
        "-c",
        "import os, sys; print(repr(sys.argv[1:])); print(repr(os.environ['K']))",
        *words,
        cwd=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    with Jobs(db) as jobs:
        jobs.wait("verbatim", timeout=20)
        out = jobs.job_logs("verbatim")[0]
    assert out == f"{words!r}\n{value!r}\n"
    assert not (tmp_path / "PWNED").exists() and not os.path.exists("PWNED")
    jobs_dir_files = _tree(str(tmp_path))
    assert all(_inside(p, db) for p in jobs_dir_files if not p.endswith("db")), jobs_dir_files


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--id", "../escape", "--", "true"],
        ["run", "--id", "a/b", "--", "true"],
        ["run", "--id", "-rf", "--", "true"],
        ["run", "-e", "=x", "--", "true"],
        ["run", "-e", "novalue", "--", "true"],
        ["run", "--", "echo", "a\udcff"],
        ["status", "../../etc/passwd"],
        ["logs", "$(touch PWNED)"],
        ["ls", "--status", "running' OR '1'='1"],
    ],
)
def test_cli_refuses_bad_ids_and_values_with_one_line(tmp_path, argv):
    _count("CLI command lines")
    db = str(tmp_path / "db")
    done = run_cli(db, *argv, cwd=str(tmp_path))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") <= 3, done.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "escape").exists()
    assert set(os.listdir(tmp_path)) <= {"db"}


def test_bad_arguments_to_run_are_refused_before_anything_is_recorded(jobs):
    bad = [
        dict(command="echo a\x00b"),
        dict(command=["echo", "a\x00"]),
        dict(command="echo \ud800"),
        dict(command=["echo", "\udcff"]),
        dict(command="true", envs={"A=B": "1"}),
        dict(command="true", envs={"": "1"}),
        dict(command="true", envs={"A": "x\x00"}),
        dict(command="true", cwd="/tmp/\x00"),
        dict(command=""),
        dict(command=[]),
    ]
    for n, kwargs in enumerate(bad):
        _count("run() arguments")
        with pytest.raises((ValueError, NodeJobsError)):
            jobs.run(job_id=f"bad-{n}", **kwargs)
        assert jobs.get_status(f"bad-{n}") is None


def test_magic_arguments_with_quotes_and_dollars(tmp_path, capsys, monkeypatch):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    db = str(tmp_path / "db")
    monkeypatch.chdir(tmp_path)
    shell.run_line_magic("load_ext", "nodejobs_magics")
    try:
        shell.run_line_magic("config", f"JobMagics.db_path = {db!r}")
        magics = shell.magics_manager.registry["JobMagics"]
        line = "run --id m1 -e 'K=$(touch PWNED)' -- printf '%s|' '$(touch PWNED)' \"it's\" '`touch PWNED`' "
        line += "'a b'"
        shell.run_line_magic("job", line)
        _count("magic lines")
        assert magics.jobs.wait("m1", timeout=20).status == "finished"
        assert magics.jobs.job_logs("m1")[0] == "$(touch PWNED)|it's|`touch PWNED`|a b|"
        for bad in [
            "run --id ../x -- true",
            "run --id 'a/b' -- true",
            "status '../../etc'",
            "run -e =x -- true",
            "run -- echo 'unbalanced",
            'logs "$(touch PWNED)"',
        ]:
            _count("magic lines")
            with pytest.raises(UsageError):
                shell.run_line_magic("job", bad)
        assert not (tmp_path / "PWNED").exists() and not (tmp_path / "x").exists()
    finally:
        shell.run_line_magic("unload_ext", "nodejobs_magics")
        shell.config.pop("JobMagics", None)
        capsys.readouterr()
        figure(
            "hostile input",
            ", ".join(f"{k}: {v}" for k, v in TRIED.items()) + "; 0 files written "
            "outside the database directory",
            capsys,
        )
