"""A learner written outside the package that lacks what every run calls is named before any training, and
one whose fit returns no FitReport is named as soon as fit returns (not by an AttributeError in the runner)."""
import pytest

from benchmarks.run import execute
from methods.base import EmbeddingLearner, FitReport, LearnerInterfaceError, euclidean

FITS: list[str] = []


class NoDistance(EmbeddingLearner):
    """Forgets ``self.distance``: its adapt (prototypes under the distance) would fail in evaluation."""

    def fit(self, train, ctx):
        FITS.append("NoDistance")
        return FitReport()

    def embed(self, x):
        return x.flatten(1)


class NoFit:
    distance = euclidean()

    def check(self, train):
        pass

    def embed(self, x):
        return x.flatten(1)


class ReturnsNothing(EmbeddingLearner):
    def __init__(self):
        super().__init__()
        self.distance = euclidean()

    def fit(self, train, ctx):
        FITS.append("ReturnsNothing")

    def embed(self, x):
        return x.flatten(1)


def _run(compose_cfg, tmp_path, learner: str, protocol: str):
    cfg = compose_cfg("method=raw", "method.reference=false", f"method.learner._target_={__name__}.{learner}",
                      f"protocol={protocol}", "study=interface", f"results_dir={tmp_path}", "fit_cache=false")
    with pytest.raises(LearnerInterfaceError) as info:
        execute(cfg)
    return str(info.value)


@pytest.mark.parametrize("learner,protocol,needle", [
    ("NoDistance", "fewshot", "NoDistance cannot be run as a learner: it has no distance."),
    ("NoFit", "knn", "NoFit cannot be run as a learner: it has no fit."),
])
def test_a_learner_missing_what_every_run_calls_is_named_before_training(compose_cfg, tmp_path, learner, protocol,
                                                                          needle):
    FITS.clear()
    message = _run(compose_cfg, tmp_path, learner, protocol)
    assert message.startswith(needle) and "self.distance in its __init__" in message
    assert FITS == []  # refused before any training


def test_a_fit_that_returns_no_report_is_named(compose_cfg, tmp_path):
    FITS.clear()
    message = _run(compose_cfg, tmp_path, "ReturnsNothing", "knn")
    assert FITS == ["ReturnsNothing"]
    assert message.startswith("ReturnsNothing.fit returned NoneType, not a methods.base.FitReport: end fit with e.g. "
                              "`return FitReport(")
