"""The layer rule of ARCHITECTURE.md, checked on the source: every import of every module
(top-level or inside a function) points to its own layer or one its row allows; no import
circles; the code shipped to hosts needs nothing but the standard library and imports
nothing that is not shipped; no module over 400 lines."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import sshmr
from sshmr.engine.bundle import ENTRY, RUNTIME
from sshmr.engine.target import Code

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "sshmr"
MAX_LINES = 400
# Imported by shipped code, yet no host needs it installed: function runs ship cloudpickle
# in their bundle, and the mrjob task imports the job's own module by name.
SHIPPED_THIRD_PARTY = {"cloudpickle"}


@dataclass
class Module:
    name: str
    path: Path
    imports: set[str] = field(default_factory=set)  # sshmr modules
    outside: set[str] = field(default_factory=set)  # top-level names of other packages


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Module]:
    found = {_module_name(p): Module(_module_name(p), p) for p in PACKAGE.rglob("*.py")}
    for mod in found.values():
        package = mod.name if mod.path.name == "__init__.py" else mod.name.rpartition(".")[0]
        for node in ast.walk(ast.parse(mod.path.read_text(), str(mod.path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    _add(mod, alias.name, found)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # ``from . import x``: x may be a module
                    sub = f"{target}.{alias.name}"
                    _add(mod, sub if sub in found else target, found)
    return found


def _add(mod: Module, target: str, found: dict[str, Module]) -> None:
    if target == "sshmr" or target.startswith("sshmr."):
        while target not in found:  # ``sshmr.x.name`` -> module ``sshmr.x``
            target = target.rpartition(".")[0]
        if target != mod.name:
            mod.imports.add(target)
    else:
        mod.outside.add(target.split(".")[0])


@dataclass
class Layer:
    name: str
    exact: set[str]
    prefixes: set[str]
    allowed: set[str]


def _layers() -> list[Layer]:
    """The table of ARCHITECTURE.md: ``| layer | modules | may import |``."""
    layers = []
    text = (REPO / "ARCHITECTURE.md").read_text()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("layer", "") or set(cells[0]) <= {"-"}:
            continue
        exact, prefixes = set(), set()
        for match in re.finditer(r"`([^`]+)`( \(the package itself\))?", cells[1]):
            name, itself = match.groups()
            if name.endswith(".*"):  # the package's modules
                prefixes.add(name[:-2])
            elif itself or name == "sshmr":  # that module alone
                exact.add(name)
            else:  # the module, or the package and everything in it
                prefixes.add(name)
        allowed = {a.strip() for a in cells[2].split(",")} - {"–", "-", ""}
        layers.append(Layer(cells[0], exact, prefixes, allowed))
    assert len(layers) >= 8, "ARCHITECTURE.md lost its layer table"
    return layers


def _layer_of(name: str, layers: list[Layer]) -> Layer | None:
    best, depth = None, -1
    for layer in layers:
        if name in layer.exact:
            return layer
        for prefix in layer.prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = layer, prefix.count(".")
    return best


def test_every_module_belongs_to_a_layer():
    layers = _layers()
    names = {layer.name for layer in layers}
    for layer in layers:
        assert layer.allowed <= names, f"{layer.name} may import unknown layers"
    orphans = sorted(m for m in _modules() if _layer_of(m, layers) is None)
    assert not orphans, f"modules in no layer of ARCHITECTURE.md: {orphans}"


def test_imports_follow_the_layer_rule():
    layers = _layers()
    broken = []
    for mod in _modules().values():
        mine = _layer_of(mod.name, layers)
        for target in sorted(mod.imports):
            theirs = _layer_of(target, layers)
            if theirs is not mine and theirs.name not in mine.allowed:
                broken.append(f"{mod.name} ({mine.name}) imports {target} ({theirs.name})")
    assert not broken, "imports that break ARCHITECTURE.md:\n" + "\n".join(broken)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    graph = {name: mod.imports for name, mod in _modules().items()}
    # The root package imports its public names; every module's parent package is imported
    # first by Python, which is no dependency of the module's own.
    graph["sshmr"] = set()
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_layer_rule_catches_an_import_that_points_up():
    layers = _layers()
    assert _layer_of("sshmr.remote.agent", layers).name == "remote"
    assert _layer_of("sshmr.mapreduce.job", layers).name == "job API"
    assert _layer_of("sshmr.mapreduce", layers).name == "job API"
    assert _layer_of("sshmr.mapreduce.driver", layers).name == "mapreduce"
    assert _layer_of("sshmr.engine.scheduler.core", layers).name == "engine"
    assert _layer_of("sshmr", layers).name == "faces"
    remote, views = _layer_of("sshmr.remote.worker", layers), _layer_of("sshmr.views.live",
                                                                        layers)
    assert views.name not in remote.allowed and "engine" not in views.allowed


def _shipped() -> dict[str, Module]:
    modules = _modules()
    names = {_module_name(PACKAGE / f) for f in RUNTIME}
    return {name: modules[name] for name in names}


def test_shipped_code_imports_only_shipped_code_and_the_standard_library():
    shipped = _shipped()
    for mod in shipped.values():
        assert mod.imports <= set(shipped), (
            f"{mod.name} is shipped to hosts but imports {sorted(mod.imports - set(shipped))}, "
            "which is not (engine/bundle.py RUNTIME)")
        other = mod.outside - set(sys.stdlib_module_names) - {"__future__"}
        assert other <= SHIPPED_THIRD_PARTY, f"{mod.name} needs {sorted(other)} on the hosts"


def test_the_remote_layer_and_job_api_are_exactly_what_is_shipped():
    layers = _layers()
    wanted = {name for name in _modules()
              if _layer_of(name, layers).name in ("remote", "job API")} | {"sshmr"}
    assert set(_shipped()) == wanted


def test_remote_imports_nothing_from_outside_remote():
    for name, mod in _modules().items():
        if name.startswith("sshmr.remote"):
            assert all(t.startswith("sshmr.remote") for t in mod.imports), (name, mod.imports)


def test_the_bundle_imports_on_a_bare_python(tmp_path):
    """The shipped files alone, with no site-packages (``-I -S``): what a host has."""
    from sshmr.engine.bundle import build_bundle

    job = b"import sshmr\n\nclass Job(sshmr.JobExecutor):\n    pass\n"
    bundle = build_bundle(Code("job", "Job", {"job.py": job}))
    for name, data in bundle.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert (tmp_path / ENTRY).is_file()
    check = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/user']\n"
             "import sshmr, job, sshmr.remote.agent, sshmr.remote.mrtask\n"
             "import sshmr.mapreduce.mrjob_task\n"
             "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('paramiko', 'yaml', 'jinja2', 'click', 'rich'))\n"
             "assert not bad, bad\n"
             "assert sshmr.__file__.startswith(sys.argv[1]), sshmr.__file__\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", check, str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(
    p.relative_to(PACKAGE)))
def test_no_module_over_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines: split it by concern"


def test_the_public_api_is_unchanged():
    assert sorted(sshmr.__all__) == sorted([
        "AuthenticationFailed", "Cancelled", "ConfigError", "HostError", "HostKeyChanged",
        "HostKeyUnknown", "HostUnreachable", "InputError", "InventoryError", "JobNotFound",
        "NoHostsAvailable", "RemoteSetupFailed", "ResultError", "RunError", "RunLocked",
        "RunNotFound", "SshmrError", "JobFailed", "HostDiskFull", "RunsDirFull",
        "TargetError", "JobExecutor", "JobState", "InputFile", "Partitioner", "Worker",
        "MapReduce", "MRStep", "ResultFile", "run", "resume", "RunResult", "JobResult",
        "RunConfig", "load_inventory", "Inventory", "Host", "__version__"])
    for name in sshmr.__all__:
        assert getattr(sshmr, name) is not None
