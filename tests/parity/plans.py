# SPDX-License-Identifier: Apache-2.0
"""Random plans and requests for the parity suite, from a seeded random.Random.

A plan has overlapping literal prefixes (squids, squidsfoo, squids-archive),
method splits, host routes, mid-path captures and both kinds of tail, a
default backend or none, and phases numbered with gaps. Not every plan drawn
is valid (two routes may leave one unreachable): the suite keeps those the
agent's --check accepts.
"""
import random

WORDS = ["squids", "squidsfoo", "squids-archive", "seafoods", "seafoodsbar", "items",
         "v1", "x.y", "a~b"]
FIRST = ["api", "query", "command"]
METHODS = [None, None, ["reads"], ["writes"], ["GET"], ["POST", "DELETE"], ["PUT", "PATCH"]]
HOSTS = [None, None, None, "a.example", "B.Example"]
BACKENDS = ["b1", "b2", "b3", "b4"]

# Capture values: plain, escaped, dot segments (also %2e), bytes a rewrite may
# not carry, and text that looks like template or regex syntax.
VALUES = ["42", "a%20b", "x.y", "..", ".", "%2e", "%2E%2e", "...", "a|b", "q\"", "<i>",
          "a\\b", "~u", "it's", "(1)", "%zz", "{x}", "^$", "`", "a*b+", "[z]", "\\1"]
TAILS = ["", "/", "/1", "/a/b", "/x|y", "/..", "/%2e%2E/z", "/q\"r", "//", "/a/./b"]
REQ_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO", "get"]
REQ_HOSTS = ["a.example", "A.EXAMPLE:8080", "b.example", "other.test", "a.example.",
             "[::1]:80", "a.example:", "B.example"]


class Route:
    def __init__(self, name, segments, tail, methods, host):
        self.name = name
        self.segments = segments  # list of ("lit", text) or ("cap", name)
        self.tail = tail          # None, "glued" or "dir"
        self.methods = methods
        self.host = host

    def pattern(self):
        s = "".join("/" + (t if k == "lit" else "{%s}" % t) for k, t in self.segments)
        if self.tail == "glued":
            s += "{rest...}"
        elif self.tail == "dir":
            s += "/{rest...}"
        return s

    def captures(self):
        names = [t for k, t in self.segments if k == "cap"]
        return names + (["rest"] if self.tail else [])


def _route(rng, name):
    segs = [("lit", rng.choice(FIRST))]
    for _ in range(rng.randint(0, 2)):
        segs.append(("lit", rng.choice(WORDS)))
    if rng.random() < 0.4:
        segs.append(("cap", "id"))
        if rng.random() < 0.5:
            segs.append(("lit", rng.choice(["photos", "images", "v2"])))
    if segs[-1][0] == "lit":
        tail = rng.choice([None, "glued", "glued", "dir"])
    else:
        tail = rng.choice([None, "dir"])
    return Route(name, segs, tail, rng.choice(METHODS), rng.choice(HOSTS))


def _template(rng, route):
    parts = ["/" + rng.choice(["new", "v2", "seafoods", "n.x"])]
    caps = route.captures()
    rng.shuffle(caps)
    for c in caps[:rng.randint(0, len(caps))]:
        if c == "rest" and rng.random() < 0.5:
            parts.append("{rest}")
        else:
            parts.append("/" + rng.choice(["", "k-", "z."]) + "{%s}" % c)
    if caps and rng.random() < 0.2:
        parts.append("/again/{%s}" % caps[0])  # a capture used twice
    return "".join(parts)


def _deprecation(key):
    """Every route may be deprecated, so each has a block: a date of its own
    (the fallback must carry each route's), a sunset far off (the fallback
    has no clock), a policy on some (the agent's alone). Drawn from its own
    generator, so the plans drawn from the seed stay the same."""
    rng = random.Random(key)
    date = "%04d-%02d-%02d" % (rng.randint(1970, 2090), rng.randint(1, 12), rng.randint(1, 28))
    if rng.random() < 0.5:
        date += "T%02d:%02d:%02dZ" % (rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
    policy = ', policy: "https://example.test/%s"' % key if rng.random() < 0.5 else ""
    return "{ date: %s, sunset: 2099-12-31%s }" % (date, policy)


def _action(rng, route, backends):
    kind = rng.random()
    b = rng.choice(backends)
    if kind < 0.3:
        return b
    if kind < 0.55:
        return {"backend": b, "rewrite": _template(rng, route)}
    if kind < 0.7:
        return {"backend": b, "rewrite": _template(rng, route), "deprecated": True}
    if kind < 0.75:
        return {"backend": b, "deprecated": True}
    if kind < 0.85:
        return {"status": 404}
    if kind < 0.92:
        return {"status": 410}
    return {"status": 410, "link": _template(rng, route)}


def _yaml_action(a):
    if isinstance(a, str):
        return a
    items = []
    for k, v in a.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, str) and k in ("rewrite", "link"):
            v = '"%s"' % v
        items.append("%s: %s" % (k, v))
    return "{ " + ", ".join(items) + " }"


class Plan:
    def __init__(self, rng, index):
        self.name = "gen%02d" % index
        self.backends = BACKENDS[:rng.randint(2, 4)]
        self.default = rng.choice(self.backends) if rng.random() < 0.5 else None
        self.routes = [_route(rng, "r%d" % i) for i in range(rng.randint(3, 7))]
        numbers, n = [], rng.randint(0, 5)
        for _ in range(rng.randint(2, 4)):
            n += rng.choice([1, 3, 10])
            numbers.append(n)
        self.phases = []
        current = {}
        for i, num in enumerate(numbers):
            changes = {}
            for r in self.routes:
                if i == 0 or rng.random() < 0.5:
                    a = _action(rng, r, self.backends)
                    if i > 0 and a == current[r.name]:
                        continue
                    changes[r.name] = a
            current.update(changes)
            self.phases.append((num, "p%d" % num, changes))
        # HAProxy lacks one plan backend now and then: such decisions must
        # end in the same 503 either way.
        self.configured = list(self.backends)
        if rng.random() < 0.25:
            self.configured.remove(rng.choice(self.backends))

    def yaml(self, phase):
        out = ["phase: %d" % phase, "backends: [%s]" % ", ".join(self.backends)]
        if self.default:
            out.append("default_backend: %s" % self.default)
        out.append("routes:")
        for r in self.routes:
            out.append("  - name: %s" % r.name)
            out.append("    path: %s" % r.pattern())
            if r.methods:
                out.append("    methods: [%s]" % ", ".join(r.methods))
            if r.host:
                out.append("    host: %s" % r.host)
            out.append("    deprecation: %s" % _deprecation(self.name + "/" + r.name))
        out.append("phases:")
        for num, name, changes in self.phases:
            out.append("  - number: %d" % num)
            out.append("    name: %s" % name)
            if changes:
                out.append("    routes:")
                for rname, a in changes.items():
                    out.append("      %s: %s" % (rname, _yaml_action(a)))
        return "\n".join(out) + "\n"


def _instance(rng, route):
    path = ""
    for k, t in route.segments:
        path += "/" + (t if k == "lit" else rng.choice(VALUES))
    if route.tail == "glued":
        path += rng.choice(TAILS)
    elif route.tail == "dir":
        path += "/" + rng.choice(VALUES + ["", "a/b"])
    return path


def _near_misses(rng, route):
    base = "".join("/" + (t if k == "lit" else "7") for k, t in route.segments)
    return [base + "foo", base + "/", base[:-1] if len(base) > 2 else "/", base.upper(),
            "/" + base.replace("/", "//", 1), base + "-archive/1", "/other" + base]


def requests(rng, plan, per_route=4):
    """[(method, path, host)] hitting every route, its neighbours and no route."""
    out = []
    for r in plan.routes:
        paths = [_instance(rng, r) for _ in range(per_route)] + rng.sample(_near_misses(rng, r), 3)
        for p in paths:
            host = r.host if r.host and rng.random() < 0.7 else rng.choice(REQ_HOSTS)
            out.append((rng.choice(REQ_METHODS), p, host))
    for p in ["/", "/nothing", "/api", "/api/", "/query/api/squids%73/1"]:
        out.append((rng.choice(REQ_METHODS), p, rng.choice(REQ_HOSTS)))
    return out
