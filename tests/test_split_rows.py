"""Records of another split (``data_seed``: ``<protocol>@split<k>``) or episode seed (``@episodes<k>``) are
their own rows, and everything downstream of the table keeps them apart: ROC curves, noise figures and
set-generation figures per split (never one curve drawn through two splits), the protocol's panels and
regression tolerance, and the splits in the order of their numbers."""
from __future__ import annotations

import pandas as pd

from benchmarks import protocol_base, protocol_tags
from benchmarks.generation_figures import identity_vs_n
from benchmarks.leaderboard import aggregate
from benchmarks.regress import compare
from benchmarks.report import build
from benchmarks.run import execute

FAST = ["method=raw", "budget.episodes=20", "fit_cache=false"]


def test_protocol_names_split_into_the_protocol_and_its_tags():
    assert protocol_base("retrieval@split1@episodes3") == "retrieval"
    assert protocol_tags("retrieval@split1@episodes3") == "@split1@episodes3"
    assert (protocol_base("knn"), protocol_tags("knn")) == ("knn", "")


def test_two_splits_of_verification_and_set_retrieval_get_their_own_curves_and_figures(compose_cfg, tmp_path):
    for protocol in ("verification", "set_retrieval"):
        for data_seed in (0, 1):
            record = execute(compose_cfg("study=two", f"protocol={protocol}", f"data_seed={data_seed}", *FAST))
            assert record["status"] == "ok"
    results = tmp_path / "results"
    assert build("two", results) == 0
    roc = pd.read_csv(results / "two" / "roc.csv")
    assert sorted(roc["protocol"].unique()) == ["verification", "verification@split1"]
    for _, curve in roc.groupby(["protocol", "method", "seed"]):  # one curve each: the false-accept rate only rises
        assert curve["fpr"].is_monotonic_increasing and curve["fpr"].iloc[-1] == 1.0
    figures = sorted(p.name for p in (results / "two" / "figures").glob("*.png"))
    for name in ("digits_roc.png", "digits@split1_roc.png", "digits_set_retrieval_vs_noise.png",
                 "digits@split1_set_retrieval_vs_noise.png", "digits_verification@split1.png"):
        assert name in figures, figures
    table = pd.read_csv(results / "two" / "leaderboard.csv")
    auc = table[table["metric"] == "auc"].set_index("protocol")["mean"]
    assert auc["verification"] != auc["verification@split1"]  # other test classes: another curve


def test_the_protocols_tolerance_holds_for_its_other_splits():
    keys = {"dataset": "digits", "method": "sdn", "metric": "auc_sampled", "n_seeds": 1}
    reference = pd.DataFrame([keys | {"protocol": p, "mean": 0.80} for p in ("set_generation", "set_generation@split1")])
    fresh = reference.assign(mean=0.75)
    settings = {"default_tolerance": 0.02, "protocol_tolerance": {"set_generation": 0.10}}
    verdicts = compare(fresh, reference, settings).set_index("protocol")
    assert verdicts["tolerance"].tolist() == [0.10, 0.10] and (verdicts["verdict"] == "ok").all()
    settings["protocol_tolerance"]["set_generation@split1"] = 0.01  # a tolerance of the split's own comes first
    assert compare(fresh, reference, settings).set_index("protocol").loc["set_generation@split1", "verdict"] \
        == "DROPPED"


def test_splits_are_listed_in_the_order_of_their_numbers():
    rows = [{"study": "s", "dataset": "digits", "protocol": p, "method": "raw", "seed": 0, "status": "ok",
             "metric": "acc", "value": 0.5, "run_ci95": 0.01, "n": 10, "reference_row": False, "fit_s": 0.0}
            for p in ("fewshot@split10", "fewshot@split2", "fewshot")]
    assert aggregate(pd.DataFrame(rows))["protocol"].tolist() == ["fewshot", "fewshot@split2", "fewshot@split10"]


def test_identity_figures_are_drawn_for_each_split(tmp_path):
    rows = [{"dataset": "digits", "protocol": p, "method": "sdn", "metric": f"identity_auc_n{n}", "mean": 0.7,
             "ci95": 0.05} for p in ("set_generation", "set_generation@split1") for n in (1, 2, 4)]
    written = identity_vs_n(pd.DataFrame(rows), tmp_path)
    assert [p.name for p in written] == ["digits_identity_vs_n.png", "digits@split1_identity_vs_n.png"]
    assert all(p.stat().st_size > 0 for p in written)
