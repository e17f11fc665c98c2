"""ROC, AUC, EER and TAR@FAR against scikit-learn and brute-force loops."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from benchmarks.roc import auc, eer, roc_points, tar_at_far, thin


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
