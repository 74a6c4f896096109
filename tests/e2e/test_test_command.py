"""The test command's stages (scripts/lib/stages.sh, used by scripts/test):
every stage runs whatever an earlier one did, the summary names the ones that
failed, and the exit status says whether all passed."""

import os
import re
import subprocess

from conftest import ROOT


def run(script, **env):
    full_env = dict(os.environ)
    full_env.pop("LAMBENT_TEST_TIMEOUT_SCALE", None)
    full_env.update(env)
    return subprocess.run(
        ["bash", "-c", f"set -uo pipefail\n. scripts/lib/stages.sh\n{script}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=full_env,
    )


def test_a_failed_stage_does_not_hide_the_others():
    r = run("""
        stage "first" true
        stage "second" sh -c 'echo second ran; exit 3'
        stage "third" sh -c 'echo third ran'
        skip "fourth" "needs second"
        summary
    """)
    assert r.returncode != 0, r.stdout
    assert "third ran" in r.stdout, "stages after a failure still run"
    summary = r.stdout.split("==> Summary", 1)[1]
    lines = [line.strip() for line in summary.strip().splitlines()]
    assert re.fullmatch(r"ok +first \(\d+ s\)", lines[0]), lines
    assert re.fullmatch(r"FAILED +second \(\d+ s\)", lines[1]), lines
    assert re.fullmatch(r"ok +third \(\d+ s\)", lines[2]), lines
    assert lines[3] == "SKIPPED  fourth (needs second)", lines
    assert lines[4] == "2 stage(s) did not pass", lines


def test_all_stages_passing_exits_zero():
    r = run('stage "a" true\nstage "b" true\nsummary')
    assert r.returncode == 0, r.stdout
    assert r.stdout.rstrip().endswith("all stages passed")


def test_the_wait_scale_is_the_setting_or_follows_the_load():
    r = run("timeout_scale", LAMBENT_TEST_TIMEOUT_SCALE="2.5")
    assert r.stdout.strip() == "2.5"
    for load, cpus, scale in (("0.30", 4, "1"), ("7.50", 2, "4"), ("4.00", 2, "2"),
                              ("100", 2, "8")):
        r = run(f"timeout_scale {load} {cpus}")
        assert r.stdout.strip() == scale, (load, cpus, r.stdout, r.stderr)
    r = run("timeout_scale")
    assert 1 <= int(r.stdout.strip()) <= 8, r.stdout


def test_the_test_command_runs_every_stage_through_the_summary():
    text = (ROOT / "scripts/test").read_text()
    assert ". scripts/lib/stages.sh" in text
    assert "set -e" not in text.replace("set -uo", ""), "one red stage must not stop the rest"
    assert text.rstrip().endswith("summary"), "the summary decides the exit status"
