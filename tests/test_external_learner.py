"""A learner written outside the package (its own module and yaml, in a folder of the user's) runs through
``python -m benchmarks.run``, lands in the same records and leaderboard as the built-in ones, and is judged on
the very same episodes."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.records import load_records

ROOT = Path(__file__).resolve().parents[1]

LEARNER = '''
"""Whitened PCA of the training inputs: a metric learned without labels."""
import torch

from methods.base import EmbeddingLearner, FitReport, euclidean


class PCALearner(EmbeddingLearner):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.dim = dim
        self.distance = euclidean()
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("basis", torch.zeros(0))

    def fit(self, train, ctx):
        x = train.x.flatten(1)
        self.mean = x.mean(0)
        _, s, v = torch.linalg.svd(x - self.mean, full_matrices=False)
        self.basis = v[: self.dim].T / s[: self.dim]
        return FitReport(notes={"dim": self.dim})

    def embed(self, x):
        return (x.flatten(1) - self.mean) @ self.basis
'''

YAML = '''name: pca
learner:
  _target_: their_learner.PCALearner
  dim: 16
'''


def test_a_learner_from_outside_the_package_joins_the_leaderboard(tmp_path):
    work = tmp_path / "my_project"  # the user's own folder, outside the repository
    (work / "conf" / "method").mkdir(parents=True)
    (work / "their_learner.py").write_text(LEARNER)
    (work / "conf" / "method" / "pca.yaml").write_text(YAML)
    results = work / "results"
    run = subprocess.run([sys.executable, "-m", "benchmarks.run", "-m", f"hydra.searchpath=[file://{work / 'conf'}]",
                          "method=raw,protonet,pca", "protocol=fewshot", "study=mine", "budget.iterations=30",
                          "budget.episodes=50", "threads=1", "progress=false", f"results_dir={results}",
                          "hydra/job_logging=none", "hydra/hydra_logging=none"],
                         cwd=work, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    records, bad = load_records(results / "runs" / "mine")
    assert not bad and sorted(r["method"] for r in records) == ["pca", "protonet", "raw"]
    by_method = {r["method"]: r for r in records}
    assert by_method["pca"]["fit"]["notes"] == {"dim": 16}
    assert by_method["pca"]["config"]["method"]["learner"]["_target_"] == "their_learner.PCALearner"
    # the very same test split and episodes as the built-in learners
    shas = {r["split"]["test_index_sha"] for r in records}
    assert len(shas) == 1
    episodes = [np.load(Path(r["_dir"]) / r["artifacts"]["episodes_acc_5w5s"]["file"]) for r in records]
    for other in episodes[1:]:
        assert all(np.array_equal(episodes[0][k], other[k]) for k in episodes[0].files)

    report = subprocess.run([sys.executable, "-m", "benchmarks.report", "mine", "--results", str(results)],
                            cwd=work, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    board = (results / "mine" / "leaderboard.md").read_text()
    assert "| pca " in board and "| protonet " in board and "| raw (ref.) " in board

    # editing the user's module refits (the fit-cache key holds its source's digest), as editing methods/ does
    (work / "their_learner.py").write_text(LEARNER.replace('notes={"dim": self.dim}', 'notes={"dim": self.dim, "v": 2}'))
    again = subprocess.run([sys.executable, "-m", "benchmarks.run", f"hydra.searchpath=[file://{work / 'conf'}]",
                            "method=pca", "protocol=retrieval", "study=mine2", "budget.iterations=30", "budget.episodes=50",
                            "threads=1",
                            "progress=false", f"results_dir={results}", "hydra/job_logging=none",
                            "hydra/hydra_logging=none"], cwd=work, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    (edited,), _ = load_records(results / "runs" / "mine2")
    assert edited["fit"]["notes"] == {"dim": 16, "v": 2} and edited["fit_cache"]["loaded"] is False

    # without a yaml of its own (the README's form: raw's yaml, renamed, not a reference row)
    bare = subprocess.run([sys.executable, "-m", "benchmarks.run", "method=raw", "method.name=pca8",
                           "method.reference=false",
                           "method.learner._target_=their_learner.PCALearner", "+method.learner.dim=8",
                           "protocol=fewshot", "study=mine", "budget.iterations=30", "budget.episodes=50", "threads=1",
                           "progress=false", f"results_dir={results}", "hydra/job_logging=none",
                           "hydra/hydra_logging=none"], cwd=work, capture_output=True, text=True, timeout=600)
    assert bare.returncode == 0, bare.stderr[-3000:]
    (pca8,) = [r for r in load_records(results / "runs" / "mine")[0] if r["method"] == "pca8"]
    assert pca8["reference_row"] is False and pca8["fit"]["notes"] == {"dim": 8, "v": 2}
    report = subprocess.run([sys.executable, "-m", "benchmarks.report", "mine", "--results", str(results)],
                            cwd=work, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and "| pca8 " in (results / "mine" / "leaderboard.md").read_text()

    # re-evaluating its saved model where the user's module cannot be imported names the fix
    elsewhere = subprocess.run([sys.executable, "-m", "benchmarks.run", f"from_run={pca8['_dir']}",
                                "protocol=retrieval", "progress=false", f"results_dir={tmp_path / 'other'}",
                                "hydra/job_logging=none", "hydra/hydra_logging=none"],
                               cwd=ROOT, capture_output=True, text=True, timeout=600,
                               env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert elsewhere.returncode != 0
    assert "module 'their_learner' cannot be imported here; put the folder that holds their_learner on PYTHONPATH" \
        in elsewhere.stderr
