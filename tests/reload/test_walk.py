# SPDX-License-Identifier: Apache-2.0
"""scripts/walk on a plan that is not the sample: phases by number or name
in plan order (the second plan numbers them 10, 20, ... 60), a phase the
plan lacks refused with the file left as it was, and a real agent followed
until it reports the phase as effective on its /status."""
import os
import shutil
import subprocess
import sys

import harness

ROOT = harness.ROOT
WALK = os.path.join(ROOT, "scripts", "walk")
SECOND = os.path.join(ROOT, "conf", "examples", "squid-api", "plan.yaml")


def walk(run_dir, *args):
    return subprocess.run([sys.executable, WALK, "--run-dir", run_dir, "--timeout", "20"]
                          + list(args), capture_output=True, text=True, timeout=60)


def plan_copy(tmp_path):
    """A copy of the second plan, and a run directory for scripts/walk."""
    plan = str(tmp_path / "plan.yaml")
    shutil.copy(SECOND, plan)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return plan, str(run_dir)


def write_env(run_dir, plan, metrics_ports):
    """cutover.env as scripts/demo writes it: plan, binary, agents."""
    with open(os.path.join(run_dir, "cutover.env"), "w") as f:
        f.write("CUTOVER_PLAN=%s\nCUTOVER_SPOA=%s\nCUTOVER_METRICS=%s\n"
                % (plan, harness.agent_binary(),
                   ",".join("127.0.0.1:%d" % p for p in metrics_ports)))


def phase_line(plan):
    with open(plan) as f:
        return [l for l in f if l.startswith("phase:")]


def test_a_phase_the_plan_lacks_is_refused_and_nothing_written(tmp_path):
    plan, run_dir = plan_copy(tmp_path)
    write_env(run_dir, plan, [])
    before = open(plan).read()
    for wrong in ("25", "reads-move", "0"):
        r = walk(run_dir, "--to", wrong)
        assert r.returncode == 1, (wrong, r.stdout, r.stderr)
        assert "not in the plan (10, 20, 30, 40, 50, 60)" in r.stderr, r.stderr
    assert open(plan).read() == before
    assert walk(run_dir, "--current").stdout.strip() == "10"


def test_walks_a_gapped_plan_by_name_and_number(tmp_path, start_agent):
    plan, run_dir = plan_copy(tmp_path)
    agent = start_agent(plan, metrics=True, log_level="info")
    write_env(run_dir, plan, [agent.metrics_port])
    r = walk(run_dir, "--to", "switch-writes")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert phase_line(plan) == ["phase: 40\n"], phase_line(plan)
    assert "every agent is at phase 40" in r.stdout, r.stdout
    r = walk(run_dir, "--to", "20")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert phase_line(plan) == ["phase: 20\n"], phase_line(plan)
    r = walk(run_dir)  # the last phase by default
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert phase_line(plan) == ["phase: 60\n"], phase_line(plan)
