"""The folders are the layers: every module imports only from its own layer or the ones below it, and
code that does not run jobs of one kind imports nothing of the local or Slurm backend. Read from the
source (every import, also one inside a function), so a new arrow that runs back up fails here."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Lowest first. A module belongs to the longest prefix listed.
LAYERS = (
    ("nodejobs.errors", "nodejobs.version", "nodejobs.model"),
    ("nodejobs.store",),
    ("nodejobs.backends",),
    ("nodejobs.engine",),
    ("nodejobs.queue",),
    ("nodejobs.functions",),
    ("nodejobs.report", "nodejobs.processes", "nodejobs.jobdb"),  # processes, jobdb: the 0.6.2 names
    ("nodejobs.jobs",),
    ("nodejobs.faces",),
    # entry points: the package, the detached steps' mains, the shims of earlier module names
    ("nodejobs", "nodejobs.__main__", "nodejobs.queue.__main__", "nodejobs.functions.__main__",
     "nodejobs.dispatch", "nodejobs.call", "nodejobs.cli", "nodejobs.backends.leftovers"),
    ("nodejobs_magics",),
)  # fmt: skip
KIND_SPECIFIC = ("nodejobs.backends.local", "nodejobs.backends.slurm")
# May use one backend by name: the backends' own package and the 0.6.2 face of local processes.
MAY_NAME_A_BACKEND = ("nodejobs.backends", "nodejobs.processes")


def layer_of(module: str) -> int:
    best, found = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    assert found >= 0, f"{module} is in no layer: add it to LAYERS"
    return found


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every nodejobs module a file imports (``from X import name`` counts as X and X.name)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)  # a name taken from a package (``from nodejobs import Jobs``) counts as it
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in ("nodejobs", "nodejobs_magics")}


def existing(module: str) -> bool:
    path = ROOT / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


SOURCES = sorted(p for pkg in ("nodejobs", "nodejobs_magics") for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_its_own_layer_and_those_below(path):
    module = module_name(path)
    targets = {m for m in imported(ast.parse(path.read_text()), module, path.name == "__init__.py")
               if existing(m)}  # fmt: skip
    upward = sorted(t for t in targets if layer_of(t) > layer_of(module))
    assert not upward, f"{module} (layer {layer_of(module)}) imports from a higher layer: {upward}"
    if not module.startswith(MAY_NAME_A_BACKEND):
        named = sorted(t for t in targets if t.startswith(KIND_SPECIFIC))
        assert not named, f"{module} is backend-neutral but imports {named}"


def test_the_layers_cover_every_module():
    assert len(SOURCES) > 50
    for path in SOURCES:
        layer_of(module_name(path))
