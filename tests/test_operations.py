"""``nodejobs.faces``: the grammar and the rules both faces share, on real jobs."""

import argparse
import math

import pytest

from nodejobs import JobNotFoundError, JobStillRunningError
from nodejobs.errors import BadUsage
from nodejobs.faces import actions, grammar, waiting
from nodejobs.faces.arguments import parse_env
from nodejobs.faces.cli import build_parser
from nodejobs.report.wording import failure_tail, summary
from nodejobs_magics import parsing


def test_parse_env_follows_one_rule_with_one_message():
    assert parse_env(["A=1", "_b2=x=y", "EMPTY="]) == {"A": "1", "_b2": "x=y", "EMPTY": ""}
    for bad in ("NOEQUALS", "=v", "1X=2", "A-B=1", "A B=1"):
        with pytest.raises(BadUsage) as info:
            parse_env([bad])
        message = str(info.value)
        assert message.startswith("-e wants NAME=VALUE, ") and message.endswith(f"not {bad!r}")


def test_seconds_and_count():
    assert grammar.seconds("1.5") == 1.5 and math.isinf(grammar.seconds("inf")) and grammar.seconds("0") == 0
    for bad in ("-1", "nan", "soon", "-inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            grammar.seconds(bad)
    assert grammar.count("0") == 0 and grammar.count("12") == 12
    for bad in ("-3", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            grammar.count(bad)


def test_both_faces_have_the_same_sub_commands_and_options():
    cli = build_parser()._subparsers._group_actions[0].choices  # argparse keeps them here
    shared = [c for c in grammar.COMMANDS if c.faces == grammar.BOTH]
    for command in shared:
        for name in (command.name, *command.aliases):
            cli_flags = {f for a in cli[name]._actions for f in a.option_strings}
            magic_flags = {f for a in parsing.parser_for(name)._actions for f in a.option_strings}
            assert magic_flags == cli_flags - {"--json"}, name
    assert {"ls", "list", "follow", "rerun", "wait", "stop"} <= set(cli) & set(parsing.SUBCOMMANDS)


def test_not_found_is_one_message_with_a_face_hint(jobs):
    with pytest.raises(JobNotFoundError) as info:
        actions.require_all(jobs, ["nope"])
    message = actions.with_hint(info.value, "ls lists them")
    assert message == f"no job 'nope' in {jobs.db_path} (ls lists them)"
    assert actions.with_hint(ValueError("other"), "ls lists them") == "other"


def test_exit_status_rules(jobs):
    for job_id, command in (("ok", "true"), ("four", "exit 4"), ("big", "exit 255")):
        jobs.run(["sh", "-c", f"sleep 0.05; {command}"], job_id)
    waited = waiting.wait_many(jobs, ["ok", "four", "big"], timeout=math.inf)
    assert [waiting.exit_status(r) for r in waited.records.values()] == [0, 4, 255]
    assert waited.exit_status() == 4 and not waited.timed_out
    jobs.run(["sleep", "30"], "slow")
    late = waiting.wait_many(jobs, ["ok", "slow", "four"], timeout=0.05)
    assert late.timed_out and late.exit_status() == waiting.TIMED_OUT
    stopped = jobs.stop("slow", grace=1)
    assert waiting.exit_status(stopped) == 143


def test_wait_any_returns_when_one_has_ended(jobs):
    jobs.run(["sleep", "30"], "slow")
    jobs.run(["sh", "-c", "sleep 0.05; exit 3"], "quick")
    waited = waiting.wait_many(jobs, ["slow", "quick"], timeout=20, any_ended=True)
    assert not waited.timed_out and waited.records["slow"].is_active and waited.exit_status() == 3


def test_remove_many_checks_all_first(jobs):
    jobs.run(["true"], "a")
    jobs.run(["sleep", "30"], "live")
    jobs.wait("a", 10)
    with pytest.raises(JobNotFoundError):
        actions.remove_many(jobs, ["a", "nosuch"])
    with pytest.raises(JobStillRunningError):
        actions.remove_many(jobs, ["a", "live"])
    assert jobs.ids() == ["a", "live"]
    assert actions.remove_many(jobs, ["a"]) == ["a"] and jobs.ids() == ["live"]


def test_stop_many(jobs):
    for name in ("s1", "s2", "s3"):
        jobs.run(["sleep", "30"], name)
    with pytest.raises(BadUsage):
        actions.stop_many(jobs, [], False, 1)
    with pytest.raises(JobNotFoundError):
        actions.stop_many(jobs, ["s1", "nosuch"], False, 1)
    assert jobs.get_status("s1").is_active  # nothing stopped
    assert list(actions.stop_many(jobs, ["s1"], False, 1)) == ["s1"]
    assert list(actions.stop_many(jobs, [], True, 1)) == ["s2", "s3"]
    assert actions.stop_many(jobs, [], True, 1) == {}


def test_summary_and_failure_tail(jobs):
    jobs.run(["sh", "-c", "sleep 0.05; for i in $(seq 1 30); do echo line$i >&2; done; exit 2"], "noisy")
    record = jobs.wait("noisy", 10)
    assert summary(record).startswith("noisy failed (exit 2) after ")
    tail = failure_tail(jobs, record)
    assert tail.splitlines() == ["[stderr of noisy, last lines]", *(f"line{i}" for i in range(21, 31))]
    jobs.run(["true"], "fine")
    assert failure_tail(jobs, jobs.wait("fine", 10)) == ""


def test_select_by_status(jobs):
    jobs.run(["true"], "done")
    jobs.run(["sleep", "30"], "live")
    jobs.wait("done", 10)
    assert list(actions.select(jobs, "active")) == ["live"]
    assert list(actions.select(jobs, "ended")) == ["done"]
    assert list(actions.select(jobs, "finished")) == ["done"]
    assert list(actions.select(jobs)) == ["done", "live"]
