"""Fitted learners kept beside their records (model.pt), evaluated again with ``from_run`` without training,
and their embeddings exported."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from benchmarks import checkpoints
from benchmarks.export_embeddings import export
from benchmarks.run import build, execute, prepare_split
from methods.base import RunContext, embed_all

ROOT = Path(__file__).resolve().parent.parent
FAST = ["budget.iterations=30", "budget.episodes=40", "threads=1", "fit_cache=false"]


def _metrics_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name  # exactly: the same weights on the same episodes


@pytest.fixture
def trained(compose_cfg):
    """A ProtoNet and an LMNN trained under the few-shot protocol, each with its model saved."""
    return {m: execute(compose_cfg(f"method={m}", "protocol=fewshot", *FAST)) for m in ("protonet", "lmnn")}


def test_every_run_saves_its_learner_and_config(trained, compose_cfg):
    for method, record in trained.items():
        run_dir = Path(_run_dir(compose_cfg, f"method={method}", "protocol=fewshot"))
        model = run_dir / "model.pt"
        assert model.is_file() and (run_dir / "model.yaml").is_file()
        assert record["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
        saved = checkpoints.load(run_dir)
        assert saved.run_id == record["run_id"] and saved.config["method"]["name"] == method
        assert len(saved.train_index) == record["split"]["n_train"]
        assert OmegaConf.load(run_dir / "model.yaml").method.name == method
    off = execute(compose_cfg("method=raw", "save_model=false", *FAST))
    off_dir = Path(compose_cfg("method=raw", *FAST).run_dir)
    assert "model" not in off and not (off_dir / "model.pt").exists()


def _run_dir(compose_cfg, *overrides) -> str:
    return str(compose_cfg(*overrides, *FAST).run_dir)


@pytest.mark.parametrize("method", ["protonet", "lmnn"])
def test_a_saved_run_evaluated_again_gives_the_original_metrics_without_training(trained, compose_cfg, method,
                                                                                 monkeypatch, capsys):
    source = _run_dir(compose_cfg, f"method={method}", "protocol=fewshot")
    learner_class = type(checkpoints.load(source).learner)

    def no_training(*args, **kwargs):
        raise AssertionError("a saved learner was trained again")
    monkeypatch.setattr(learner_class, "fit", no_training)
    again = execute(compose_cfg(f"from_run={source}", "protocol=fewshot", "threads=1"))
    _metrics_equal(again["metrics"], trained[method]["metrics"])
    assert again["study"] == "default@checkpoint" and again["method"] == method
    assert again["from_run"]["run_id"] == trained[method]["run_id"] and again["from_run"]["same_split"]
    assert again["timings"]["fit_s"] == 0.0 and again["fit"] == trained[method]["fit"]
    # a second call finds its own record and skips
    capsys.readouterr()
    assert execute(compose_cfg(f"from_run={source}", "protocol=fewshot", "threads=1"))["run_id"] == again["run_id"]
    assert "[skip]" in capsys.readouterr().out


def test_another_protocol_and_another_episode_seed_equal_a_fresh_evaluation_of_the_same_weights(trained, compose_cfg):
    source = _run_dir(compose_cfg, "method=protonet", "protocol=fewshot")
    for overrides in (["protocol=retrieval"], ["protocol=verification"], ["protocol=fewshot", "episode_seed=3"]):
        again = execute(compose_cfg(f"from_run={source}", "threads=1", *overrides))
        # the fresh evaluation: load the weights, split the data as the runner does, evaluate directly
        cfg = compose_cfg("method=protonet", *FAST, *overrides)
        saved = checkpoints.load(source)
        protocol = build(cfg.protocol.evaluator)
        split = prepare_split(cfg, protocol)
        assert np.array_equal(np.sort(split.train_index.numpy()), np.sort(saved.train_index))
        fresh = protocol.evaluate(saved.learner, split, RunContext(seed=0, progress=False),
                                  data_seed=cfg.episode_seed)
        _metrics_equal(again["metrics"], {k: m.to_dict() for k, m in fresh.metrics.items()})
        # and a run that trains the same learner again (deterministic) under that protocol agrees too
        _metrics_equal(again["metrics"], execute(cfg)["metrics"])
    on_seed3 = execute(compose_cfg(f"from_run={source}", "episode_seed=3", "threads=1"))
    assert on_seed3["protocol"] == "fewshot@episodes3"
    assert on_seed3["metrics"] != trained["protonet"]["metrics"]  # other episodes, other numbers


def test_a_protocol_that_tests_on_the_training_samples_is_refused(trained, compose_cfg):
    source = _run_dir(compose_cfg, "method=protonet", "protocol=fewshot")
    with pytest.raises(checkpoints.CheckpointError, match=r"knn protocol's split tests on \d+ of the \d+ samples"):
        execute(compose_cfg(f"from_run={source}", "protocol=knn", "threads=1"))


def test_overrides_that_a_saved_run_decides_are_refused(trained, compose_cfg, tmp_path):
    source = _run_dir(compose_cfg, "method=protonet", "protocol=fewshot")
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", f"from_run={source}", "method=raw",
                          f"results_dir={tmp_path / 'results'}", "progress=false", "hydra/job_logging=none",
                          "hydra/hydra_logging=none"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0
    assert "the override 'method=raw' would be ignored" in out.stderr


def test_missing_or_damaged_checkpoints_are_named(tmp_path, compose_cfg):
    with pytest.raises(checkpoints.CheckpointError, match="there is no such folder"):
        checkpoints.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(checkpoints.CheckpointError, match="holds no model.pt.*save_model=true"):
        execute(compose_cfg(f"from_run={tmp_path / 'empty'}"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoints.CheckpointError, match="could not read .*model.pt"):
        checkpoints.load(tmp_path / "bad")
    torch.save({"format": 99}, tmp_path / "bad" / "model.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not a checkpoint of format 1"):
        checkpoints.load(tmp_path / "bad")


def test_exported_embeddings_are_the_learner_s_embeddings_of_its_split(trained, compose_cfg, tmp_path):
    source = _run_dir(compose_cfg, "method=protonet", "protocol=fewshot")
    written = export(source, tmp_path / "exported", sides=("train", "test"))
    saved = checkpoints.load(source)
    cfg = compose_cfg("method=protonet", *FAST)
    split = prepare_split(cfg, build(cfg.protocol.evaluator))
    out = tmp_path / "exported"
    for side in ("train", "test"):
        data = getattr(split, side)
        emb = np.load(out / f"{side}_embeddings.npy")
        assert emb.dtype == np.float32 and emb.shape == (len(data), 64)
        assert np.allclose(emb, embed_all(saved.learner, data.x).numpy(), atol=1e-6)
        assert np.array_equal(np.load(out / f"{side}_labels.npy"), data.y.numpy())
        assert np.array_equal(np.load(out / f"{side}_index.npy"), getattr(split, f"{side}_index").numpy())
        assert written["sides"][side]["n"] == len(data)
    names = json.loads((out / "class_names.json").read_text())
    assert names == [str(c) for c in split.train.classes] and len(names) == 10
    assert set(np.load(out / "test_labels.npy")).isdisjoint(set(np.load(out / "train_labels.npy")))  # class-disjoint
    assert json.loads((out / "export.json").read_text())["run_id"] == trained["protonet"]["run_id"]
    cli = subprocess.run([sys.executable, "-m", "benchmarks.export_embeddings", str(tmp_path / "none")], cwd=ROOT,
                         capture_output=True, text=True)
    assert cli.returncode == 2 and "there is no such folder" in cli.stderr


def test_a_saved_run_whose_data_file_changed_is_refused(compose_cfg, tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path / "mine.npz"
    np.savez(path, x=digits.data, y=digits.target)
    execute(compose_cfg("dataset=arrays", f"dataset.path={path}", "method=raw", "protocol=fewshot", *FAST))
    source = _run_dir(compose_cfg, "dataset=arrays", f"dataset.path={path}", "method=raw", "protocol=fewshot")
    assert execute(compose_cfg(f"from_run={source}", "threads=1"))["status"] == "ok"  # unchanged: fine
    np.savez(path, x=digits.data[::-1], y=digits.target[::-1])
    with pytest.raises(checkpoints.CheckpointError, match=r"mine.npz changed since the saved run"):
        execute(compose_cfg(f"from_run={source}", "protocol=retrieval", "threads=1"))


def test_a_from_run_folder_that_holds_no_run_is_one_line_on_the_command_line(tmp_path):
    """Found before any record is written: the one [failed] line names the folder and what to give, without
    Hydra's traceback, and the run exits 1 having written nothing."""
    cli = subprocess.run([sys.executable, "-m", "benchmarks.run", f"from_run={tmp_path / 'nowhere'}",
                          "protocol=retrieval", f"results_dir={tmp_path / 'results'}", "hydra/job_logging=none",
                          "hydra/hydra_logging=none"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 1
    assert cli.stderr.startswith(f"[failed] {tmp_path / 'nowhere'}: there is no such folder; give the folder of a "
                                 "finished run"), cli.stderr
    assert "Traceback" not in cli.stderr and not (tmp_path / "results" / "runs").exists()


def test_a_sweep_over_saved_runs_of_several_seeds_runs_and_reports_one_row(compose_cfg, tmp_path):
    """Each saved run gives its own seed (and so its own folder): the sweep's folder check leaves from_run
    sweeps to that, and the table averages the seeds, whose from_run differs by nature."""
    from benchmarks.report import build

    results = tmp_path / "results"
    folders = [tmp_path / f"saved{seed}" for seed in (0, 1)]
    for seed, folder in enumerate(folders):
        execute(compose_cfg("method=protonet", "protocol=fewshot", f"seed={seed}", *FAST, f"results_dir={results}",
                            f"run_dir={folder}"))
    cli = subprocess.run([sys.executable, "-m", "benchmarks.run", "-m", f"from_run={folders[0]},{folders[1]}",
                          "protocol=retrieval", "study=again", f"results_dir={results}", "threads=1",
                          "hydra/job_logging=none", "hydra/hydra_logging=none", "progress=false"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert build("again@checkpoint", results) == 0
    table = (results / "again@checkpoint" / "leaderboard.md").read_text()
    assert "| protonet |       2 |" in table
