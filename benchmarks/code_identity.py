"""The code a run's numbers come from, as a digest.

A run's code is:
- the project's modules its config names (every ``_target_``: the learner, its backbone, the data set's
  loader, the protocol) and every project module those import, followed through their import statements
  (read, not executed, so the answer does not depend on what else one process has imported);
- the data pipeline (``datasets/``) and the runner's own files (``RUNNER``: the split, standardisation and
  seeding every run goes through, outside any target's imports);
- a module a ``_target_`` names outside the project and outside the installed packages (a user's own learner
  on ``sys.path``), its own file.
The digest covers those files' names and contents. Editing a learner, or a module it imports
(``methods/base.py``), changes the digest of every run that uses it; adding another learner's module, or
editing one this run never imports, changes nothing. Each file is read once per process, and that reading
is what the process's digests use: a file edited while a sweep runs gives the sweep's later runs the digest
of the code they were run with (the modules they imported), not the edit's. Both the fit cache (what a fit
is keyed on) and the records (which runs a re-run must run again, which seeds a table row may average) use
it.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
PACKAGES = ("methods", "datasets", "benchmarks")  # the project's own packages; everything else is a dependency
RUNNER = ("benchmarks/run.py", "benchmarks/environment.py")  # split, standardise, seed: in every run's code
_READ: dict[Path, bytes] = {}  # file -> its contents when this process first read it


def _contents(path: Path) -> bytes:
    """``path``'s bytes as this process first read them (the code it imported then, or imports next)."""
    if path not in _READ:
        _READ[path] = path.read_bytes()
    return _READ[path]


def targets(node) -> list[str]:
    """Every ``_target_`` string in a (resolved, plain) config."""
    if isinstance(node, dict):
        found = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        return found + [t for v in node.values() for t in targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in targets(v)]
    return []


def _source(module: str) -> Path | None:
    """The project file of a dotted module name (a package's ``__init__.py``), or None outside the project."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = PROJECT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_of(target: str) -> str | None:
    """The longest dotted prefix of ``target`` (``methods.protonet.ProtoNet``) that is a project module."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if _source(".".join(parts[:end])) is not None:
            return ".".join(parts[:end])
    return None


@lru_cache(maxsize=None)
def _imports(path: Path, contents: bytes) -> tuple[str, ...]:
    """The project modules a file imports (each ``from a.b import c`` as ``a.b`` and, where it is a module,
    ``a.b.c``), at any depth of the file (inside functions too)."""
    package = ".".join(path.relative_to(PROJECT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    else:
        package = package.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(contents, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's package, up level - 1
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return tuple(m for m in dict.fromkeys(found) if _source(m) is not None)


def closure(modules: list[str]) -> list[Path]:
    """The files of ``modules`` and of every project module they import, directly or not, with the packages'
    ``__init__.py`` files that importing them runs; sorted."""
    seen: dict[str, Path] = {}
    stack = [m for m in modules if _source(m) is not None]
    while stack:
        module = stack.pop()
        if module in seen:
            continue
        path = _source(module)
        seen[module] = path
        parents = [".".join(module.split(".")[:i]) for i in range(1, len(module.split(".")))]
        stack += [m for m in (*parents, *_imports(path, _contents(path))) if m not in seen]
    return sorted(set(seen.values()))


def external_files(config_targets: list[str]) -> list[Path]:
    """The source files of the modules ``config_targets`` name that live outside this project and outside the
    installed packages (a user's own learner, on Hydra's search path and ``sys.path``)."""
    import importlib.util
    import sysconfig

    installed = {Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    found = set()
    for target in config_targets:
        module = target.rsplit(".", 1)[0]
        if _module_of(target) is not None or not module:
            continue
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin not in (None, "built-in") else None
        if origin is None or not origin.is_file() or origin.is_relative_to(PROJECT) or \
                any(origin.is_relative_to(p) for p in installed):
            continue
        found.add(origin)
    return sorted(found)


def code_digest(config_targets: list[str]) -> str:
    """sha256 (16 hex digits) over the names and contents of the files of a run's code (see the module's
    doc) for the ``_target_`` strings ``config_targets``."""
    modules = [m for m in (_module_of(t) for t in config_targets) if m is not None]
    project = set(closure(modules)) | set((PROJECT / "datasets").rglob("*.py")) | {PROJECT / f for f in RUNNER}
    digest = hashlib.sha256()
    for path in sorted(project):
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0")
        digest.update(_contents(path))
    for path in external_files(config_targets):
        digest.update(b"external\0" + _contents(path))
    return digest.hexdigest()[:16]


def run_code(config: dict) -> str:
    """The digest of the code of a run of ``config`` (resolved, plain): its learner, backbone, data set and
    protocol, and what they import."""
    return code_digest(targets(config))


def fit_code(config: dict) -> str:
    """The digest of the code of a fit under ``config``: the learner, the backbone and the data set's loader,
    not the protocol that scores it (the set-generation judge's fit is keyed with the judge as its method)."""
    return code_digest(targets({k: config.get(k) for k in ("method", "backbone", "dataset")}))
