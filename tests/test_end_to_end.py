"""A smoke run through the runner: records, reproducibility, report, figures, and a Hydra multirun."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.records import load_records
from benchmarks.report import build
from benchmarks.run import execute

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["budget.iterations=20", "budget.episodes=30", "study=e2e"]


@pytest.mark.parametrize("protocol", ["fewshot", "retrieval", "verification", "knn"])
def test_one_run_per_protocol(compose_cfg, protocol):
    cfg = compose_cfg("method=protonet", f"protocol={protocol}", *SMALL)
    record = execute(cfg)
    assert record["status"] == "ok"
    on_disk = json.loads((Path(cfg.run_dir) / "record.json").read_text())
    assert on_disk["metrics"] == record["metrics"] and on_disk["schema_version"] == 1
    for key in ("run_id", "config", "timings", "device", "versions", "git", "split"):
        assert on_disk[key]
    expected = {"fewshot": {"acc_5w1s", "acc_5w5s"},
                "retrieval": {"p_at_1", "r_precision", "map_at_r", "recall_at_1", "recall_at_8", "nmi"},
                "verification": {"auc", "eer", "tar_at_far_1e-2", "tar_at_far_1e-3"},
                "knn": {"knn_error"}}[protocol]
    assert expected <= set(record["metrics"])
    for m in record["metrics"].values():
        assert 0.0 <= m["mean"] <= 1.0
    if protocol == "fewshot":
        assert record["metrics"]["acc_5w1s"]["n"] == 30 and record["metrics"]["acc_5w1s"]["ci95"] > 0
        assert set(record["artifacts"]) == {"episodes_acc_5w1s", "episodes_acc_5w5s"}
        assert (Path(cfg.run_dir) / "episodes_acc_5w1s.npz").is_file()
    if protocol == "verification":
        roc = pd.read_csv(Path(cfg.run_dir) / record["curves"]["roc"])
        assert roc["fpr"].iloc[0] == 0 and roc["tpr"].iloc[-1] == 1
        n_test_classes = len(record["split"]["test_classes"])
        for m in record["metrics"].values():  # bootstrap over the held-out classes
            assert m["n"] == n_test_classes and m["ci95"] is not None and m["ci95"] > 0


def test_same_seed_same_numbers_and_same_episodes_for_every_method(compose_cfg, tmp_path):
    a = execute(compose_cfg("method=triplet", *SMALL))
    b = execute(compose_cfg("method=triplet", "skip_existing=false", "study=again", "fit_cache=false", *SMALL[:2]))
    assert "fit_cache" not in b  # trained again, not loaded: the training itself is reproducible
    assert a["metrics"] == b["metrics"]
    c = execute(compose_cfg("method=raw", *SMALL))
    assert a["artifacts"]["episodes_acc_5w1s"]["sha256"] == c["artifacts"]["episodes_acc_5w1s"]["sha256"]
    d = execute(compose_cfg("method=triplet", "seed=1", *SMALL))
    assert d["metrics"] != a["metrics"]  # the training seed matters
    assert d["artifacts"]["episodes_acc_5w1s"]["sha256"] == a["artifacts"]["episodes_acc_5w1s"]["sha256"]


def test_rerun_skips_existing_record(compose_cfg, capsys):
    cfg = compose_cfg("method=raw", *SMALL)
    first = execute(cfg)
    second = execute(cfg)
    assert "already holds this run's record" in capsys.readouterr().out
    assert second["started"] == first["started"]


def test_written_files_get_the_permissions_of_any_new_file(compose_cfg, tmp_path):
    """Records, models, fits, curves and tables are written through temporary files (mkstemp makes them 0600):
    each gets what open() would give it under the process's umask, so a shared results folder stays readable."""
    import os
    mask = os.umask(0o022)
    os.umask(mask)
    cfg = compose_cfg("method=protonet", "protocol=verification", *SMALL)
    execute(cfg)
    build("e2e", results_dir=Path(cfg.results_dir))
    written = [p for p in Path(cfg.results_dir).rglob("*") if p.is_file() and "hydra" not in p.parts]
    kinds = {p.suffix for p in written}
    assert {".json", ".pt", ".csv", ".md", ".npz"} <= kinds, kinds
    assert any(p.parent == Path(cfg.fit_cache_dir) and p.suffix == ".pt" for p in written)
    modes = {str(p.relative_to(cfg.results_dir)): oct(p.stat().st_mode & 0o777) for p in written
             if p.suffix != ".lock"}
    assert set(modes.values()) == {oct(0o666 & ~mask)}, modes


def test_report_and_figures(compose_cfg, tmp_path, capsys):
    for method in ("raw", "untrained", "protonet"):
        for protocol in ("fewshot", "verification", "retrieval", "knn"):
            execute(compose_cfg(f"method={method}", f"protocol={protocol}", *SMALL))
    results = tmp_path / "results"
    assert build("e2e", results) == 0
    table = pd.read_csv(results / "e2e" / "leaderboard.csv")
    assert set(table["method"]) == {"raw", "untrained", "protonet"}
    assert table.groupby("method").size().nunique() == 1  # every method has every metric
    text = (results / "e2e" / "leaderboard.md").read_text()
    assert "raw (ref.)" in text and "acc_5w1s" in text and "±" in text
    figures = sorted(p.name for p in (results / "e2e" / "figures").glob("*.png"))
    assert figures == ["digits_fewshot.png", "digits_knn.png", "digits_retrieval.png", "digits_roc.png",
                       "digits_verification.png"]
    pdfs = sorted(p.name for p in (results / "e2e" / "figures").glob("*.pdf"))
    assert pdfs == [name.replace(".png", ".pdf") for name in figures]  # each also as vector PDF
    assert (results / "e2e" / "leaderboard.tex").read_text().count(r"\begin{tabular}") == 4


def test_hydra_multirun_from_the_command_line(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.run", "-m", "method=raw,untrained", "protocol=knn", "seed=0,1",
           f"results_dir={tmp_path}", "progress=false", "study=multi", "budget.iterations=2"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records, unreadable = load_records(tmp_path / "runs" / "multi")
    assert not unreadable
    assert sorted((r["method"], r["seed"]) for r in records) == [("raw", 0), ("raw", 1), ("untrained", 0), ("untrained", 1)]
