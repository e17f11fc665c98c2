"""A run's code (benchmarks.code_identity): the project modules its config's _target_s name and every project
module they import, plus datasets/. Editing those makes the fit cache fit again, a re-run of the sweep run
again (keeping the old record), and a table refuse to average seeds made by the old and the new code;
adding or editing a module the run never imports changes nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import benchmarks.code_identity as code_identity
import benchmarks.run as run_module
from benchmarks.code_identity import closure, code_digest
from benchmarks.report import MixedSettingsError, build
from benchmarks.run import execute


def _tree(root: Path) -> None:
    files = {"methods/__init__.py": "", "methods/base.py": "class Base: pass\n",
             "methods/a.py": "from .base import Base\nimport torch\n\nclass A(Base):\n    def f(self):\n"
                             "        from methods.helpers import h\n        return h\n",
             "methods/helpers.py": "def h(): return 1\n", "methods/b.py": "from methods.base import Base\n",
             "datasets/__init__.py": "", "datasets/splits.py": "SEED = 0\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_digest_follows_the_imports_of_the_named_modules(tmp_path, monkeypatch):
    _tree(tmp_path)
    for runner in code_identity.RUNNER:  # the runner's files are in every run's code
        (tmp_path / runner).parent.mkdir(exist_ok=True)
        (tmp_path / runner).write_text("")
    monkeypatch.setattr(code_identity, "PROJECT", tmp_path)
    monkeypatch.setattr(code_identity, "_READ", {})
    names = [p.relative_to(tmp_path).as_posix() for p in closure(["methods.a"])]
    # relative imports, imports inside functions and package __init__ files count; torch and methods.b do not
    assert names == ["methods/__init__.py", "methods/a.py", "methods/base.py", "methods/helpers.py"]
    before = code_digest(["methods.a.A", "torch.optim.Adam"])
    (tmp_path / "methods" / "c.py").write_text("x = 1\n")  # a new learner's module
    (tmp_path / "methods" / "b.py").write_text("y = 2\n")  # a module A never imports
    assert code_digest(["methods.a.A", "torch.optim.Adam"]) == before
    for edited in ("methods/helpers.py", "methods/base.py", "datasets/splits.py", "benchmarks/run.py"):
        (tmp_path / edited).write_text((tmp_path / edited).read_text() + "# edited\n")
        # this process imported the code it first read: a sweep edited while it runs keeps that code's digest
        assert code_digest(["methods.a.A"]) == before, edited
        monkeypatch.setattr(code_identity, "_READ", {})  # a new process reads the edit
        after = code_digest(["methods.a.A"])
        assert after != before, edited
        before = after


def _run(compose_cfg, seed: int) -> dict:
    return execute(compose_cfg("study=code", "method=protonet", "protocol=fewshot", f"seed={seed}",
                               "budget.iterations=5", "budget.episodes=5"))


def test_a_run_made_by_other_code_runs_again_and_a_row_never_mixes_code(compose_cfg, tmp_path, monkeypatch, capsys):
    first = _run(compose_cfg, 0)
    assert first["status"] == "ok" and len(first["code"]) == 16
    assert _run(compose_cfg, 0)["started"] == first["started"]  # the same code: skipped
    assert "[skip]" in capsys.readouterr().out
    real = run_module.run_code
    monkeypatch.setattr(run_module, "run_code", lambda config: "edited" + real(config)[6:])  # the learner edited
    again = _run(compose_cfg, 0)
    assert "[rerun]" in capsys.readouterr().out and again["code"] != first["code"]
    folder = Path(compose_cfg("study=code", "method=protonet", "protocol=fewshot", "seed=0").run_dir)
    assert json.loads((folder / "record.previous.json").read_text())["code"] == first["code"]  # the old one kept
    monkeypatch.setattr(run_module, "run_code", real)
    assert _run(compose_cfg, 1)["code"] == first["code"]  # seed 1 by the code of now; seed 0 by the edited code
    with pytest.raises(MixedSettingsError, match=r"digits / fewshot / protonet: code: 'edited.*' \(seed 0\), "
                                                 rf"'{first['code']}' \(seed 1\).*Seeds made by other code"):
        build("code", tmp_path / "results")
    assert _run(compose_cfg, 0)["code"] == first["code"]  # the sweep run again: seed 0 is made again by this code
    assert build("code", tmp_path / "results") == 0


def test_a_learner_module_outside_the_project_is_part_of_the_code(tmp_path, monkeypatch):
    """The README's own learner outside the package (their_learner.PCALearner on sys.path): editing it changes
    the digest of its runs (their records are run again, its fits made again), as editing methods/ does."""
    (tmp_path / "outside_learner_mod.py").write_text("class Mine:\n    power = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(code_identity, "_READ", {})
    target = ["outside_learner_mod.Mine", "methods.raw.RawFeatures"]
    before = code_digest(target)
    assert code_identity.external_files(target) == [(tmp_path / "outside_learner_mod.py").resolve()]
    (tmp_path / "outside_learner_mod.py").write_text("class Mine:\n    power = 1\n")
    monkeypatch.setattr(code_identity, "_READ", {})
    assert code_digest(target) != before
    assert code_digest(["torch.optim.Adam", "methods.raw.RawFeatures"]) == code_digest(["methods.raw.RawFeatures"])
