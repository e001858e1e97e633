"""postbacks/ in wings: no import circle between its modules, and no module of
a wing (incoming/, delivery/) imports the loops that run it."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "postbacks"
WINGS = ("postbacks.incoming", "postbacks.delivery")
LOOPS = "postbacks.loops"


def module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {
        module_name(p): p
        for p in ROOT.rglob("*.py")
        if "migrations" not in p.parts and "management" not in p.parts
    }


def imports_of(path, known):
    """The postbacks modules a file imports, anywhere in it (lazy imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name in known}


def graph():
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def package_edges(g):
    """A module importing `pkg.mod` also runs `pkg/__init__`: not an edge of its own."""
    return {
        m: {t for t in targets if not (m.startswith(t + ".") or t == m)} for m, targets in g.items()
    }


def cycle(g):
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            return stack[stack.index(node) :] + [node]
        if node in seen:
            return None
        seen.add(node)
        stack.append(node)
        for target in sorted(g.get(node, ())):
            found = visit(target)
            if found:
                return found
        stack.pop()
        return None

    for start in sorted(g):
        found = visit(start)
        if found:
            return found
    return None


def test_postbacks_has_no_import_circle():
    assert cycle(package_edges(graph())) is None


def test_no_module_of_a_wing_imports_the_loops():
    wrong = {
        (name, target)
        for name, targets in graph().items()
        if name.startswith(WINGS)
        for target in targets
        if target.startswith(LOOPS)
    }
    assert wrong == set()


def test_the_check_sees_a_circle_and_a_wing_importing_the_loops():
    # The checks above would pass on an empty graph: show they see what they forbid.
    assert cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    g = graph()
    assert "postbacks.loops.embedded" in g["postbacks.loops.jobs"]
    assert "postbacks.delivery.attempts" in g["postbacks.loops.jobs"]
