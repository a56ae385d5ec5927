#!/usr/bin/env python3
"""The library's floors: every module uses only modules on its own floor or lower ones, and
no modules use each other in a circle.

Reads the `crate::`, `super::` and `self::` paths of every file under SRC (default: src/),
finds the module each one names, and fails, naming the file and the arrow, when a module
reaches a floor above its own, when two modules form a circle, or when a module has no floor
in FLOORS. A directory module (`stream.rs` and `stream/*.rs`) is one module: its files may use
each other, unless FLOORS names one of them (`proxy::url`), which is then a module of its own.
A path to a re-exported item (`crate::Proxy`, `crate::starttls::Problem`) counts as an arrow to
the module that defines it. `src/main.rs` and `src/cli/` are the command line, a crate of its own that sees
the library only through `gracetls::`, and are not read; `lib.rs` is the front door, above
every floor.

    python3 tests/layers.py [SRC] [--graph]
"""

import re
import sys
from pathlib import Path

# Bottom to top. docs/design.md draws the same table.
FLOORS = [
    (
        "data",
        "plain data and the words for it: what a program configures, what a connection "
        "reports, what can go wrong",
        [
            "platform",
            "format",
            "base64",
            "utc",
            "alert",
            "certificate",
            "session",
            "report",
            "target",
            "proxy::kind",
            "proxy::url",
            "starttls::protocol",
            "openssl_text",
            "error",
            "io_error",
            "config",
        ],
    ),
    (
        "record",
        "the record layer: TLS records in memory between TLS and the socket",
        ["record", "transport", "read_size", "outbound", "acked"],
    ),
    (
        "dialing",
        "from a target to a TLS session: TCP, proxy tunnels, STARTTLS, the handshake and, "
        "when it fails, the diagnosis",
        ["connect", "proxy", "starttls", "handshake", "diagnose", "dial"],
    ),
    (
        "api",
        "what a program holds: Stream (std-shaped) and Connection (one reader thread)",
        ["stream", "connection", "unversioned"],
    ),
]

FLOOR_OF = {m: i for i, (_, _, mods) in enumerate(FLOORS) for m in mods}
NAME = [name for name, _, _ in FLOORS]

PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
USE = re.compile(r"^([ \t]*)(?:pub(?:\([\w:]+\))?\s+)?use\s+([^;]*);", re.S | re.M)


def strip(text):
    """The code without comments and string literals, which may mention paths freely."""
    text = re.sub(r"'(?:\\.|[^'\\])'", "' '", text)
    text = re.sub(r'r(#*)"(?:.|\n)*?"\1', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    text = re.sub(r"/\*(?:.|\n)*?\*/", "", text)
    return re.sub(r"//[^\n]*", "", text)


def module_of(path, src):
    """`stream/read.rs` -> ("stream", "read"); `starttls/mod.rs` -> ("starttls",)."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return tuple(parts)


def expand(tree):
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", " ", tree).strip()
    depth, start, items = 0, 0, []
    for i, ch in enumerate(tree + ","):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(tree[start:i].strip())
            start = i + 1
    out = []
    for item in filter(None, items):
        if "{" in item:
            head, inner = item.split("{", 1)
            out += [head + sub for sub in expand(inner[: inner.rindex("}")])]
        else:
            out.append(item)
    return [re.sub(r"\s*::\s*", "::", o) for o in out]


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {module_of(p, src): p for p in sorted(src.rglob("*.rs"))}
        self.files[()] = self.files.pop(("lib",))
        self.files.pop(("main",), None)
        self.files = {m: p for m, p in self.files.items() if not m or m[0] != "cli"}
        self.code = {m: strip(p.read_text()) for m, p in self.files.items()}
        # What each module's `use` lines bring in: name -> the absolute path it stands for.
        self.names = {m: {} for m in self.files}
        self.uses = {m: [] for m in self.files}
        for m, code in self.code.items():
            for u in USE.finditer(code):
                # An indented `use` is in an inline module (`mod tests`), whose `super` is
                # this file's module.
                inner = m + ("",) if u.group(1) else m
                for item in expand(u.group(2)):
                    path, _, alias = item.partition(" as ")
                    full = self.absolute(inner, path.split("::"))
                    if full is None:
                        continue
                    self.uses[m].append(full)
                    name = alias.strip() or full[-1]
                    if name not in ("*", "self"):
                        self.names[m][name] = full

    def absolute(self, here, segs):
        """A path as written in module `here` -> the path from the crate root, or None when
        it leaves the crate."""
        segs = [s for s in segs if s]
        if not segs:
            return None
        head, rest = segs[0], segs[1:]
        if head == "crate":
            return tuple(rest)
        if head == "self":
            return here + tuple(rest)
        if head == "super":
            up = here[:-1]
            while rest and rest[0] == "super":
                up, rest = up[:-1], rest[1:]
            return up + tuple(rest)
        if here + (head,) in self.files:
            return here + tuple(segs)
        return None

    def resolve(self, full, depth=0):
        """The module where the item `full` is defined, following `use` re-exports."""
        for cut in range(len(full), -1, -1):
            if full[:cut] in self.files:
                module, rest = full[:cut], full[cut:]
                break
        if rest and depth < 16:
            target = self.names[module].get(rest[0])
            if target is not None and target[:-1] != module:
                return self.resolve(target + rest[1:], depth + 1)
        return module

    def references(self, module):
        """Every module the code of `module` names."""
        code = self.code[module]
        paths = list(self.uses[module])
        for m in PATH.finditer(USE.sub("", code)):
            full = self.absolute(module, (m.group(1) + m.group(2)).split("::"))
            if full is not None:
                paths.append(full)
        return {self.resolve(p) for p in paths}


def unit(module):
    """The longest module path in FLOORS that `module` is in, or its top-level module."""
    for cut in range(len(module), 0, -1):
        if "::".join(module[:cut]) in FLOOR_OF:
            return "::".join(module[:cut])
    return module[0] if module else ""


def graph(src):
    crate = Crate(src)
    modules = {unit(m) for m in crate.files if m}
    edges = {}  # (from unit, to unit) -> the first file with that arrow
    for module, path in crate.files.items():
        if not module:
            continue
        for target in crate.references(module):
            a, b = unit(module), unit(target)
            if b and a != b:
                edges.setdefault((a, b), str(Path(src.name) / path.relative_to(src)))
    return modules, edges


def cycles(modules, edges):
    """Each circle once, as a list of modules."""
    succ = {m: sorted(t for (f, t) in edges if f == m) for m in modules}
    index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return comps


def loop(comp, edges):
    """The shortest circle through the first module of `comp`, each arrow with its file."""
    start = comp[0]
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for (f, t), _ in sorted(edges.items()):
            if f != path[-1] or t not in comp:
                continue
            if t == start:
                hops = path + [start]
                return " -> ".join(
                    f"{a} ({edges[(a, b)]})" for a, b in zip(hops, hops[1:])
                ) + f" -> {start}"
            if t not in seen:
                seen.add(t)
                paths.append(path + [t])
    return ""


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = Path(args[0] if args else Path(__file__).resolve().parent.parent / "src")
    modules, edges = graph(src)
    if "--graph" in sys.argv:
        for (f, t), where in sorted(edges.items()):
            print(f"{f} -> {t}  ({where})")
    problems = []
    for m in sorted(modules):
        if m not in FLOOR_OF:
            problems.append(f"src/{m}: module {m} has no floor in tests/layers.py's FLOORS")
    for (f, t), where in sorted(edges.items()):
        if f in FLOOR_OF and t in FLOOR_OF and FLOOR_OF[t] > FLOOR_OF[f]:
            problems.append(
                f"{where}: {f} ({NAME[FLOOR_OF[f]]}) -> {t} ({NAME[FLOOR_OF[t]]}): "
                "imports from a floor above its own"
            )
    for comp in cycles(modules, edges):
        problems.append(f"circle among {', '.join(comp)}: " + loop(comp, edges))
    for line in problems:
        print(line)
    if problems:
        print(f"layers: {len(problems)} problem(s)")
        return 1
    counts = ", ".join(
        f"{name} {sum(1 for m in modules if FLOOR_OF.get(m) == i)}" for i, name in enumerate(NAME)
    )
    print(f"layers: ok, {len(modules)} modules, {len(edges)} arrows, all down or level ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
