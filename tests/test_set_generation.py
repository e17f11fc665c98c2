"""The set-generation protocol: its pairs against brute force, its draws, its verdict on generators whose
quality is known (copies of real members; noise), and the runner's judge."""
import json

import numpy as np
import pytest
import torch

from benchmarks.protocols.base import UnsupportedProtocolError
from benchmarks.protocols.set_generation import SetGenerationProtocol, set_pairs
from benchmarks.report import build as build_report
from benchmarks.run import execute
from datasets.splits import ClassDisjointSplit
from helpers import blobs
from methods.base import RunContext
from methods.raw import RawFeatures


def test_set_pairs_by_brute_force():
    torch.manual_seed(0)
    emb = torch.randn(4, 3, 2)
    group = torch.tensor([0, 0, 1, 2])
    scores, a, b = set_pairs(emb, group, RawFeatures().distance)
    expected = []
    flat = emb.reshape(12, 2)
    for i in range(12):
        for j in range(i + 1, 12):
            si, sj = i // 3, j // 3
            if si == sj or group[si] != group[sj]:
                expected.append((-float(torch.dist(flat[i], flat[j])), si, sj))
    assert len(scores) == len(expected)  # 4 * 3 same-set pairs + the 5 cross-group set pairs * 9
    np.testing.assert_allclose(scores, [e[0] for e in expected], rtol=1e-6)
    assert a.tolist() == [e[1] for e in expected] and b.tolist() == [e[2] for e in expected]


def test_draws_are_nested_disjoint_from_the_gallery_and_fixed_by_the_seed():
    labels = torch.arange(3).repeat_interleave(40)
    protocol = SetGenerationProtocol(set_sizes=(1, 4), sets_per_class=5, gallery_per_class=10)
    sets, set_class, gallery = protocol.draw(labels, seed=3)
    assert sets.shape == (15, 4) and len(gallery) == 30
    assert bool((labels[sets] == set_class[:, None]).all())
    assert not set(sets.flatten().tolist()) & set(gallery.tolist())
    assert all(len(set(s.tolist())) == 4 for s in sets)
    again = protocol.draw(labels, seed=3)
    assert all(torch.equal(x, y) for x, y in zip((sets, set_class, gallery), again))
    assert not torch.equal(protocol.draw(labels, seed=4)[0], sets)


class CopyingGenerator:
    """Knows the test data: a set's code is its class (one-hot), generation returns real members of it."""

    def __init__(self, data, noise_only: bool = False):
        self.x, self.y, self.noise_only = data.x, data.y, noise_only
        self.n_classes = int(data.y.max()) + 1

    def encode_sets(self, sets):
        first = sets[:, 0].reshape(len(sets), -1)
        rows = torch.cdist(first, self.x.reshape(len(self.x), -1)).argmin(1)
        return torch.nn.functional.one_hot(self.y[rows], self.n_classes).float()

    def generate(self, codes, per_set, generator=None):
        if self.noise_only:
            return torch.randn(len(codes), per_set, *self.x.shape[1:], generator=generator)
        out = []
        for c in codes.argmax(1).tolist():
            members = torch.nonzero(self.y == c).flatten()
            out.append(self.x[members[torch.randperm(len(members), generator=generator)[:per_set]]])
        return torch.stack(out)

    def sample_codes(self, n, generator=None):
        present = torch.unique(self.y)
        return torch.nn.functional.one_hot(present[torch.randint(len(present), (n,), generator=generator)],
                                           self.n_classes).float()


def evaluate(learner):
    data = blobs(n_classes=8, per_class=40, dim=6, spread=2.0)
    split = ClassDisjointSplit(test_classes=0.5)(data, seed=0)
    protocol = SetGenerationProtocol(set_sizes=(1, 2, 4), sets_per_class=6, per_set=4, gallery_per_class=10,
                                     bootstrap=20, judge=RawFeatures())
    return protocol.evaluate(learner(split.test), split, RunContext(progress=False), data_seed=0)


def test_copies_of_real_members_verify_like_real_sets_and_noise_does_not():
    copies, noise = evaluate(CopyingGenerator), evaluate(lambda d: CopyingGenerator(d, noise_only=True))
    m, w = copies.metrics, noise.metrics
    real_level = m["identity_auc_real_n4"].mean
    assert real_level > 0.8
    for n in (1, 2, 4):
        assert abs(m[f"identity_auc_n{n}"].mean - real_level) < 0.08  # real members of the right class
        assert abs(w[f"identity_auc_n{n}"].mean - 0.5) < 0.1  # noise knows nothing of the class
    assert abs(m["auc_reconstructed"].mean - m["auc_real"].mean) < 0.08
    assert w["auc_reconstructed"].mean < m["auc_reconstructed"].mean - 0.2
    assert 0 < m["distinct_sampled_codes"].mean <= 4 / 24 + 1e-9  # 4 test classes among 24 sampled codes
    assert set(copies.curves) == {"roc_real", "roc_reconstructed", "roc_sampled", "identity_vs_n"}
    grid = copies.artifacts["grid"]
    assert grid["inputs"].shape == (4, 4, 6) and grid["reconstructed_n2"].shape == (4, 4, 6)


def test_check_errors_name_the_fix():
    data = blobs(n_classes=4, per_class=12, dim=3)
    split = ClassDisjointSplit(test_classes=0.5)(data, seed=0)
    with pytest.raises(ValueError, match="gallery_per_class"):
        SetGenerationProtocol(gallery_per_class=10, set_sizes=(8,)).check(split)
    with pytest.raises(ValueError, match="judge"):
        SetGenerationProtocol(gallery_per_class=2, set_sizes=(2,)).evaluate(
            CopyingGenerator(split.test), split, RunContext(progress=False), 0)
    with pytest.raises(UnsupportedProtocolError, match="encode_sets"):
        SetGenerationProtocol().check_learner(RawFeatures())


TINY = ["budget.iterations=40", "budget.episodes=5", "protocol.evaluator.sets_per_class=3", "protocol.evaluator.bootstrap=10"]


def test_the_runner_fits_the_judge_as_a_run_of_its_own_would(compose_cfg):
    own = execute(compose_cfg("method=triplet", "protocol=fewshot", "fit_cache=false", *TINY[:2]))
    rec = execute(compose_cfg("method=sdn", "protocol=set_generation", "fit_cache=false", *TINY))
    assert rec["status"] == "ok" and rec["judge"]["method"] == "triplet"
    assert rec["judge"]["fit"]["loss_curve"] == own["fit"]["loss_curve"]  # same start, same batches
    alone = execute(compose_cfg("method=sdn", "protocol=fewshot", "fit_cache=false", *TINY[:2]))
    assert rec["fit"]["loss_curve"] == alone["fit"]["loss_curve"]
    assert all(0.0 <= m["mean"] <= 1.0 for m in rec["metrics"].values())


def test_fitting_the_judge_leaves_every_random_state_as_it_was(compose_cfg):
    """The triplet judge's fit draws from the global generators (initialisation, batches); the learner's
    fit that follows must start from the state a run without a judge would have."""
    import random

    import numpy as np

    from benchmarks.run import build, fit_judge, prepare_split
    cfg = compose_cfg("method=sdn", "protocol=set_generation", "fit_cache=false", *TINY)
    protocol = build(cfg.protocol.evaluator)
    split = prepare_split(cfg, protocol)
    cfg.backbone.input_shape = list(split.train.input_shape)
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    record = {}
    judge = fit_judge(cfg, split, torch.device("cpu"), record)
    assert record["judge"]["fit"]["iterations"] == 40 and judge is not None
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]



def test_without_the_guard_the_judge_would_move_the_random_state(compose_cfg, monkeypatch):
    """The check above can fail: with the guard taken away, fitting the judge moves the global state."""
    import contextlib

    import benchmarks.run as run
    monkeypatch.setattr(run, "kept_random_state", contextlib.nullcontext)
    cfg = compose_cfg("method=sdn", "protocol=set_generation", "fit_cache=false", *TINY)
    protocol = run.build(cfg.protocol.evaluator)
    split = run.prepare_split(cfg, protocol)
    cfg.backbone.input_shape = list(split.train.input_shape)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    run.fit_judge(cfg, split, torch.device("cpu"), {})
    assert not torch.equal(torch.get_rng_state(), before)


def test_a_study_gets_its_figures_and_the_judge_comes_from_the_fit_cache(compose_cfg, tmp_path):
    execute(compose_cfg("method=triplet", "protocol=fewshot", "study=gen", *TINY[:2]))
    rec = execute(compose_cfg("method=sdn", "protocol=set_generation", "study=gen", *TINY))
    assert rec["judge"]["fit_cache"]["loaded"] is True
    assert build_report("gen", tmp_path / "results") == 0
    figures = {p.name for p in (tmp_path / "results" / "gen" / "figures").glob("*.png")}
    assert {"digits_sdn_set_generation_roc.png", "digits_identity_vs_n.png", "digits_sdn_set_generation_grid.png",
            "digits_sdn_set_generation_samples.png"} <= figures


def test_a_run_without_a_judge_fails_before_training(compose_cfg, tmp_path):
    with pytest.raises(ValueError, match="method@protocol.judge"):
        execute(compose_cfg("method=sdn", "protocol=set_generation", "~protocol.judge", "study=nojudge", *TINY))
    record = json.loads(next((tmp_path / "results" / "runs" / "nojudge").rglob("record.json")).read_text())
    assert record["status"] == "failed" and "fit" not in record


def test_a_judge_under_a_protocol_that_takes_none_fails_before_training(compose_cfg):
    with pytest.raises(ValueError, match="takes no judge"):
        execute(compose_cfg("method=triplet", "protocol=fewshot", "+method@protocol.judge=triplet", *TINY[:2]))


def test_a_learner_that_cannot_generate_fails_before_training(compose_cfg, tmp_path):
    with pytest.raises(UnsupportedProtocolError, match="sample_codes"):
        execute(compose_cfg("method=protonet", "protocol=set_generation", "study=bad", *TINY))
    record = json.loads(next((tmp_path / "results" / "runs" / "bad").rglob("record.json")).read_text())
    assert record["status"] == "failed" and "fit" not in record


def test_a_judge_that_cannot_train_on_the_split_fails_in_the_checks(compose_cfg, tmp_path):
    """The judge's own check (here ProtoNet asked for 50-way training episodes on 5 training classes) is a bad
    input: raised with the other checks, before the judge or the learner trains."""
    from datasets.episodes import EpisodeError
    with pytest.raises(EpisodeError, match="50-way"):
        execute(compose_cfg("method=sdn", "protocol=set_generation", "method@protocol.judge=protonet",
                            "protocol.judge.learner.n_way=50", "study=badjudge", *TINY))
    record = json.loads(next((tmp_path / "results" / "runs" / "badjudge").rglob("record.json")).read_text())
    assert record["error"]["phase"] == "checks" and "judge" not in record and "fit_s" not in record["timings"]


def test_a_failure_while_the_judge_trains_is_a_training_failure(compose_cfg, tmp_path):
    """Fitting the judge is training: an error there keeps the phase "fit" (and with it the traceback on the
    command line), not the "checks" of a bad input."""
    from methods.training import NonFiniteLossError
    with pytest.raises(NonFiniteLossError, match=r"Lower the learning rate \(protocol\.judge\.learner\.optimizer\.lr="):
        execute(compose_cfg("method=sdn", "protocol=set_generation", "protocol.judge.learner.optimizer.lr=1e30",
                            "study=judgefails", *TINY))  # the judge's training diverges: its own lr is named
    record = json.loads(next((tmp_path / "results" / "runs" / "judgefails").rglob("record.json")).read_text())
    assert record["error"]["phase"] == "fit" and "Traceback" in record["error"]["traceback"]
    # the failed record names the judge it was fitting and the judge's fit-cache key (where its lock is)
    assert record["judge"]["method"] == "triplet" and record["judge"]["seed"] == 0
    assert set(record["judge"]["fit_cache"]) == {"key"} and "fit_cache" not in record
