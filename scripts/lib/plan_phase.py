# SPDX-License-Identifier: Apache-2.0
"""The plan file's top-level `phase:` line: read it and set it.

Shared by scripts/walk, the benchmark and the Python test suites, so that
every one of them finds and rewrites the line the same way. The line is
`phase: <number or name>`, optionally followed by a `# comment`, which
setting keeps. A plan with no such line, or with more than one, is refused:
which one would the agent read?
"""
import re

LINE = re.compile(r"^phase:[ \t]*(?P<value>[^#\n]*?)[ \t]*(?P<rest>(#.*)?)$", re.M)


def _only(text):
    found = list(LINE.finditer(text))
    if len(found) != 1:
        raise ValueError("%d top-level `phase:` lines, not 1" % len(found))
    return found[0]


def value(text):
    """The phase the plan text names: its number or name, as written."""
    return _only(text).group("value").strip("'\"")


def line_number(text):
    """1-based line of the phase line."""
    return text[:_only(text).start()].count("\n") + 1


def set_phase(text, phase):
    """The plan text with its phase line set to `phase`, comment kept."""
    m = _only(text)
    rest = " " + m.group("rest") if m.group("rest") else ""
    return text[:m.start()] + "phase: %s%s" % (phase, rest) + text[m.end():]
