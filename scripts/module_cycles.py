#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a circle (`use crate::a` in b and `use crate::b` in a, also
through longer chains). A module counts with its submodules: an import from `a::x` of `b::y` is an edge a -> b
between the sibling modules under their common parent, so `a -> b` and `b::child -> a` is a circle too. Test
modules and comments are ignored. Usage: scripts/module_cycles.py  (run by .ci/run)"""
import glob
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRATES = ["contract/src", "model/src", "pg_recsys/src", "trainer/src", "tests/src"]


def module_name(src_root, path):
    parts = os.path.relpath(path, src_root)[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return "::".join(parts) or "crate"


def dependencies(name, path, modules):
    text = re.split(r"#\[cfg\((?:all\()?test\b", open(path, encoding="utf-8").read())[0]
    text = re.sub(r"//.*", "", text)
    parent = name.rsplit("::", 1)[0] if "::" in name else ""
    found = set()
    for chain in re.findall(r"crate::([a-z_]+(?:::[a-z_]+)*)", text):
        segments = chain.split("::")
        for length in range(len(segments), 0, -1):
            candidate = "::".join(segments[:length])
            if candidate in modules:
                found.add(candidate)
                break
    for child in re.findall(r"super::([a-z_]+)", text):
        candidate = f"{parent}::{child}" if parent else child
        if candidate in modules:
            found.add(candidate)
    related = lambda other: other == name or other.startswith(name + "::") or name.startswith(other + "::")
    return {other for other in found if not related(other)}


def sibling_ancestors(name, other):
    """The ancestors of `name` and `other` (themselves included) that are children of their lowest common parent."""
    a, b = name.split("::"), other.split("::")
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    return "::".join(a[: common + 1]), "::".join(b[: common + 1])


def cycles(graph):
    state, stack, found = {}, [], set()

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.add(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


failed = False
for crate in CRATES:
    src_root = os.path.join(ROOT, crate)
    files = glob.glob(os.path.join(src_root, "**", "*.rs"), recursive=True)
    modules = {module_name(src_root, f): f for f in files}
    modules = {name: path for name, path in modules.items() if name.split("::")[-1] != "tests"}
    graph = {}
    for name, path in modules.items():
        for other in dependencies(name, path, modules):
            source, target = sibling_ancestors(name, other)
            graph.setdefault(source, set()).add(target)
    found = cycles(graph)
    print(f"{crate}: {len(modules)} modules, {'import circles: ' + '; '.join(sorted(found)) if found else 'no import circle'}")
    failed |= bool(found)
sys.exit(1 if failed else 0)
