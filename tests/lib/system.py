"""Where the parts of the system live in the repository, and the sample plan
at a chosen phase: shared by the suites that run the whole system (e2e,
faults) or edit plans (reload)."""
import os
import re

from harness import ROOT

APPS = os.path.join(ROOT, "scripts", "apps")
PLAN = os.path.join(ROOT, "conf", "cutover.yaml")
HAPROXY_CFG = os.path.join(ROOT, "haproxy", "haproxy.cfg")
SPOE_CONF = os.path.join(ROOT, "haproxy", "cutover.spoe")
ROLES = ("old-query", "old-command", "new-query", "new-command")
_PHASE_LINE = re.compile(r"^phase:[^\n]*$", re.M)


def plan_text(phase):
    """The sample plan with its one top-level `phase:` line set to `phase`."""
    with open(PLAN) as f:
        text = f.read()
    text, n = _PHASE_LINE.subn("phase: %s" % phase, text)
    if n != 1:
        raise AssertionError("%s has %d top-level `phase:` lines, not 1" % (PLAN, n))
    return text


def write_atomic(path, data):
    """Replaces path by rename, as editors and deploy tools do."""
    tmp = path + ".tmp-%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.rename(tmp, path)
