# SPDX-License-Identifier: Apache-2.0
"""Generates bad edits of a good plan file, for the live bad-plan case.

bad_edits(text) yields (kind, description, content) where content is the new
file's bytes, or None for "the file is deleted". The generator knows YAML's
shape, not the plan schema: it breaks the text in ways an operator's editor or
a broken deploy would (truncation, swapped types, unknown keys, dangling
names, garbage, size). Whether a generated edit is really invalid is for the
agent's own `--check` to say (a truncation that only drops trailing comments
is still a good plan); the test applies only edits `--check` rejects, plus the
kinds that must always be rejected (MUST_REJECT).
"""
import random
import re

import plan_phase

MUST_REJECT = ("empty file", "binary garbage", "10 MiB file", "file deleted",
               "phase out of the plan")

_KEY_LINE = re.compile(r"^(\s*)(-\s+)?([A-Za-z_][A-Za-z0-9_-]*):(\s+)(\S.*)$")
_BLOCK_KEY = re.compile(r"^(\s*)(-\s+)?([A-Za-z_][A-Za-z0-9_-]*):\s*(#.*)?$")


def _lines(text):
    return text.splitlines(keepends=True)


def _significant(line):
    s = line.strip()
    return s and not s.startswith("#")


def truncations(text, mid_every=4):
    """The file cut after every significant line (not blank, not a comment:
    cutting after those gives the same document as the cut before them), and
    cut in the middle of every mid_every-th significant line."""
    lines = _lines(text)
    n = 0
    for i in range(1, len(lines)):
        if not _significant(lines[i - 1]):
            continue
        n += 1
        yield ("truncated", "cut after line %d" % i, "".join(lines[:i]))
        if n % mid_every == 0 and len(lines[i - 1].rstrip()) > 1:
            half = len(lines[i - 1].rstrip()) // 2
            yield ("truncated", "cut in the middle of line %d" % i,
                   "".join(lines[:i - 1]) + lines[i - 1][:half])


def swapped_types(text, every=3):
    """Every every-th `key: value` line with its value replaced by a mapping,
    a list, or a scalar of another kind."""
    lines = _lines(text)
    n = 0
    for i, line in enumerate(lines):
        m = _KEY_LINE.match(line.rstrip("\n"))
        if not m or m.group(5).startswith("#"):
            continue
        n += 1
        if n % every:
            continue
        value = m.group(5).split(" #")[0].strip()
        prefix = line[:m.start(5)]
        if value.startswith("["):
            repl = "{%s: 1}" % m.group(3)
        elif re.fullmatch(r"-?\d+", value):
            repl = "[%s, %s]" % (value, value)
        else:
            repl = "{nested: [1, 2]}"
        yield ("type swapped", "line %d: %s -> %s" % (i + 1, value[:30], repl),
               "".join(lines[:i]) + prefix + repl + "\n" + "".join(lines[i + 1:]))


def unknown_keys(text):
    """An unknown key at the top level and as the first key inside each block
    mapping (`key:` lines that open an indented block)."""
    lines = _lines(text)
    yield ("unknown key", "top level", "bogus_top_level_key: 1\n" + text)
    seen = set()
    for i, line in enumerate(lines[:-1]):
        m = _BLOCK_KEY.match(line.rstrip("\n"))
        if not m:
            continue
        nxt = next((l for l in lines[i + 1:] if _significant(l)), None)
        if nxt is None:
            continue
        indent = len(nxt) - len(nxt.lstrip(" "))
        if indent <= len(m.group(1)) + len(m.group(2) or ""):
            continue
        if nxt.lstrip(" ").startswith("- "):
            continue  # a sequence, not a mapping
        key = (m.group(3), indent)
        if key in seen:
            continue
        seen.add(key)
        extra = " " * indent + "no_such_key_%d: true\n" % i
        yield ("unknown key", "inside `%s:` (line %d)" % (m.group(3), i + 1),
               "".join(lines[:i + 1]) + extra + "".join(lines[i + 1:]))


def dangling_backends(text, backends):
    """Each occurrence of a backend name but the first (its declaration)
    renamed to one the plan does not declare."""
    for b in backends:
        spots = [m.start() for m in re.finditer(r"\b%s\b" % re.escape(b), text)]
        for n, pos in enumerate(spots[1:], 1):
            line = text.count("\n", 0, pos) + 1
            yield ("dangling backend", "%s occurrence %d (line %d) -> ghost_%s" % (b, n, line, b),
                   text[:pos] + "ghost_" + b + text[pos + len(b):])


def duplicates(text):
    """The `phase:` line repeated; the whole file repeated (duplicate keys)."""
    m = plan_phase.LINE.search(text)
    if m:
        end = text.index("\n", m.start()) + 1
        yield ("duplicate key", "phase: twice", text[:end] + text[m.start():end] + text[end:])
    yield ("duplicate key", "the whole file twice", text + "\n" + text)


def phase_out_of_plan(text):
    for value in ("99", "0", "-1", "no-such-phase", "1.5", "[4]"):
        yield ("phase out of the plan", "phase: %s" % value,
               plan_phase.set_phase(text, value))


def syntax(text):
    lines = _lines(text)
    i = next(i for i, l in enumerate(lines) if _significant(l) and l.startswith(" "))
    yield ("syntax", "tab indentation at line %d" % (i + 1),
           "".join(lines[:i]) + "\t" + lines[i].lstrip(" ") + "".join(lines[i + 1:]))
    yield ("syntax", "unclosed quote", text + 'broken: "never closed\n')
    yield ("syntax", "unclosed flow sequence", text + "broken: [1, 2\n")
    yield ("syntax", "anchor alias bomb", "a: &a [x, x, x]\nb: &b [*a, *a, *a]\n"
           "c: &c [*b, *b, *b]\nd: [*c, *c, *c]\n" + text)
    yield ("syntax", "document is a list", "- " + "\n- ".join(l.strip() for l in lines
                                                            if _significant(l))[:4000])


def garbage(text, seed=5):
    rnd = random.Random(seed)
    yield ("empty file", "0 bytes", b"")
    yield ("empty file", "whitespace only", b"\n   \n\t\n")
    for n in (1, 17, 4096):
        yield ("binary garbage", "%d random bytes" % n,
               bytes(rnd.randrange(256) for _ in range(n)))
    yield ("binary garbage", "NUL bytes in the plan",
           text.encode().replace(b"phase", b"ph\x00se", 1))
    yield ("binary garbage", "invalid UTF-8 in the plan", text.encode() + b"# \xff\xfe\xc3\x28\n")
    pad = b"# padding to make the file 10 MiB\n"
    body = text.encode()
    yield ("10 MiB file", "the plan followed by 10 MiB of comments",
           body + pad * ((10 << 20) // len(pad) + 1))
    yield ("file deleted", "plan file removed", None)


def bad_edits(text, backends):
    """Every generated edit, in a fixed order."""
    for gen in (truncations(text), swapped_types(text), unknown_keys(text),
                dangling_backends(text, backends), duplicates(text), phase_out_of_plan(text),
                syntax(text), garbage(text)):
        for kind, what, content in gen:
            if isinstance(content, str):
                content = content.encode("utf-8", "surrogateescape")
            yield kind, what, content
