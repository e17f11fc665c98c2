"""ROC, AUC, EER and TAR@FAR against scikit-learn and brute-force loops."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from benchmarks.roc import auc, class_bootstrap, eer, roc_points, tar_at_far, thin


@pytest.mark.parametrize("seed", range(4))
def test_auc_and_points_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    same = rng.random(500) < 0.3
    scores = np.round(rng.normal(size=500) + same * 1.2, 1)  # rounding makes ties
    fpr, tpr, thr = roc_points(scores, same)
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(same, scores), abs=1e-12)
    sk_fpr, sk_tpr, _ = roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_eer_and_tar_by_brute_force():
    rng = np.random.default_rng(7)
    same = rng.random(400) < 0.5
    scores = rng.normal(size=400) + same * 1.5
    fpr, tpr, _ = roc_points(scores, same)
    # brute force over thresholds: TAR at FAR = best acceptance rate of genuine pairs with FAR <= target
    best = {1e-1: 0.0, 1e-2: 0.0}
    for t in np.r_[np.inf, np.unique(scores)]:
        accept = scores >= t
        far, tar = accept[~same].mean(), accept[same].mean()
        for target in best:
            if far <= target:
                best[target] = max(best[target], tar)
    for target, value in best.items():
        assert tar_at_far(fpr, tpr, target) == pytest.approx(value)
    e = eer(fpr, tpr)
    gaps = np.abs(fpr - (1 - tpr))
    i = int(np.argmin(gaps))
    assert min(fpr[i], 1 - tpr[i]) - 1e-9 <= e <= max(fpr[i], 1 - tpr[i]) + 0.02


def test_perfect_and_random_separation():
    same = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    fpr, tpr, _ = roc_points(np.r_[np.ones(50), np.zeros(50)], same)
    assert auc(fpr, tpr) == 1.0 and eer(fpr, tpr) == 0.0 and tar_at_far(fpr, tpr, 1e-3) == 1.0
    fpr, tpr, _ = roc_points(np.zeros(100), same)  # one big tie
    assert auc(fpr, tpr) == pytest.approx(0.5) and eer(fpr, tpr) == pytest.approx(0.5)


def test_thin_keeps_ends_and_order():
    rng = np.random.default_rng(1)
    same = rng.random(20000) < 0.1
    fpr, tpr, _ = roc_points(rng.normal(size=20000) + same, same)
    f, t = thin(fpr, tpr, max_points=100)
    assert len(f) <= 100 and f[0] == 0 and f[-1] == 1 and t[-1] == 1
    assert np.all(np.diff(f) >= 0) and np.all(np.diff(t) >= 0)


def test_one_sided_pairs_are_an_error():
    with pytest.raises(ValueError, match="both"):
        roc_points(np.arange(4.0), np.ones(4, bool))


def test_weights_count_pairs_as_repeats():
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=60), 1)  # ties
    same = rng.random(60) < 0.4
    w = rng.integers(0, 4, 60)
    fw, tw, _ = roc_points(scores, same, w)
    fr, tr, _ = roc_points(np.repeat(scores, w), np.repeat(same, w))
    assert auc(fw, tw) == pytest.approx(auc(fr, tr)) and eer(fw, tw) == pytest.approx(eer(fr, tr))
    assert auc(fw, tw) == pytest.approx(roc_auc_score(same, scores, sample_weight=w))


def _explicit_replicate(emb_scores, labels, draw):
    """Brute force: items of the drawn classes, one copy per draw; all pairs except two copies of a class."""
    items = [(copy, i) for copy, c in enumerate(draw) for i in np.flatnonzero(labels == c)]
    scores, same = [], []
    for p in range(len(items)):
        for q in range(p + 1, len(items)):
            (cp, i), (cq, j) = items[p], items[q]
            if labels[i] == labels[j] and cp != cq:
                continue
            scores.append(emb_scores[min(i, j), max(i, j)])
            same.append(labels[i] == labels[j])
    return roc_points(np.array(scores), np.array(same))


def test_class_bootstrap_equals_explicit_resampling():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 3)
    x = rng.normal(size=(12, 2)) + labels[:, None] * 0.7
    sim = -np.linalg.norm(x[:, None] - x[None], axis=-1)
    i, j = np.triu_indices(12, 1)
    seed, n_boot = 5, 6
    stats = {"auc": auc, "eer": eer, "tar": lambda f, t: tar_at_far(f, t, 0.1)}
    got = class_bootstrap(sim[i, j], labels[i], labels[j], stats, n_boot=n_boot, seed=seed)
    draws = np.random.default_rng(seed)
    expected = {k: [] for k in stats}
    for _ in range(n_boot):
        draw = draws.integers(0, 4, 4)
        if len(np.unique(draw)) < 2:
            continue
        f, t, _ = _explicit_replicate(sim, labels, np.sort(draw))
        for k, fn in stats.items():
            expected[k].append(fn(f, t))
    assert len(expected["auc"]) >= 4
    for k in stats:
        np.testing.assert_allclose(got[k], expected[k], atol=1e-12)


def test_class_bootstrap_spread_shrinks_with_more_classes():
    def spread(n_classes):
        rng = np.random.default_rng(1)
        labels = np.repeat(np.arange(n_classes), 4)
        x = rng.normal(size=(len(labels), 3)) + rng.normal(size=(n_classes, 3))[labels] * 1.5
        sim = -np.linalg.norm(x[:, None] - x[None], axis=-1)
        i, j = np.triu_indices(len(labels), 1)
        return class_bootstrap(sim[i, j], labels[i], labels[j], {"auc": auc}, n_boot=200, seed=0)["auc"].std()
    assert spread(40) < spread(5)


def test_a_false_accept_rate_the_test_pairs_cannot_resolve_is_refused_before_training():
    """24 test samples of 4 classes give 216 different-class pairs: TAR at FAR 1e-3 would be the TAR at a
    false-accept rate of 0 (not one false accept can be told), reported under the name of 1e-3. Refused in the
    protocol's check, with the rates that the pairs do resolve; with those, the protocol runs."""
    import re

    import torch

    from benchmarks.protocols.verification import VerificationProtocol
    from datasets.splits import Split
    from helpers import blobs
    from methods.base import RunContext
    from methods.raw import RawFeatures

    test = blobs(n_classes=4, per_class=6)
    split = Split(train=blobs(n_classes=2, per_class=6), test=test, train_index=torch.arange(12),
                  test_index=torch.arange(24), kind="class-disjoint")
    message = ("TAR at FAR 0.001 needs at least 1000 different-class pairs to tell one false accept, but the 24 test "
               "samples give 216: set protocol.evaluator.fars to rates of at least 1/216 (e.g. "
               "protocol.evaluator.fars=[5e-3]), or hold out more test samples")
    with pytest.raises(ValueError, match=re.escape(message)):
        VerificationProtocol().check(split)
    result = VerificationProtocol(fars=(5e-3, 1e-2)).evaluate(RawFeatures(), split, RunContext(), data_seed=0)
    assert set(result.metrics) == {"auc", "eer", "tar_at_far_5e-3", "tar_at_far_1e-2"}
