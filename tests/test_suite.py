"""Leaderboards (benchmarks.suite): several presets run one after the other and merged into one table;
every member's grid is checked before anything runs; merged studies may not hold the same run twice."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.records import read_record, write_json_atomic
from benchmarks.report import MergeError, build
from benchmarks.suite import SuiteError, check_member, check_members, load_suite

ROOT = Path(__file__).resolve().parent.parent
QUIET = ["hydra/job_logging=none", "hydra/hydra_logging=none"]


def _suite(tmp_path: Path, members: list[dict]) -> Path:
    path = tmp_path / "tiny_board.yaml"
    path.write_text(yaml.safe_dump({"studies": members}))
    return path


def _run_suite(path: Path, results: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.suite", str(path), "--results", str(results),
                           "budget.iterations=5", "threads=1", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_a_leaderboard_runs_its_members_and_merges_them(tmp_path):
    results = tmp_path / "results"
    path = _suite(tmp_path, [
        {"experiment": "tabular_knn", "overrides": ["dataset=iris,wine", "method=raw,lmnn", "seed=0"]},
        {"experiment": "smoke_digits", "overrides": ["method=raw", "protocol=knn", "seed=0,1"]},
    ])
    done = _run_suite(path, results)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "tiny_board: 2 studies, 6 runs: tabular_knn (4), smoke_digits (2)" in done.stdout
    board = (results / "tiny_board" / "leaderboard.md").read_text()
    for section in ("iris · knn", "wine · knn", "digits · knn"):
        assert section in board
    assert (results / "tiny_board" / "leaderboard.tex").is_file()
    summary = json.loads((results / "tiny_board" / "suite.json").read_text())
    assert [(s["study"], s["runs"]) for s in summary["studies"]] == [("tabular_knn", 4), ("smoke_digits", 2)]
    assert all(s["wall_s"] > 0 for s in summary["studies"]) and summary["wall_s"] >= sum(
        s["wall_s"] for s in summary["studies"]) - 0.05 * (1 + len(summary["studies"]))  # each rounded to 0.1 s
    # each member keeps its own study folder, and a second run resumes: every record is skipped
    assert len(list((results / "runs" / "tabular_knn").rglob("record.json"))) == 4
    again = _run_suite(path, results)
    assert again.returncode == 0 and again.stdout.count("[skip]") == 6


def test_a_bad_member_fails_before_anything_runs(tmp_path):
    results = tmp_path / "results"
    for members, message in (
            ([{"experiment": "smoke_digits", "overrides": ["method=raw", "protocol=knn", "seed=0"]},
              {"experiment": "no_such_preset"}], "conf/experiment/no_such_preset.yaml does not exist"),
            ([{"experiment": "smoke_digits", "overrides": ["method=raw,no_such_method", "protocol=knn", "seed=0"]}],
             "method=no_such_method"),
            ([{"experiment": "smoke_digits", "overrides": ["method=raw", "seed=0"]},
              {"experiment": "smoke_digits", "overrides": ["method=lmnn", "seed=0"]}], "write the same study"),
            ([{"experiment": "smoke_digits", "overrides": ["method=raw,lmnn", "protocol=knn", "seed=0"]},
              {"experiment": "tabular_knn", "overrides": ["dataset=digits", "method=raw", "seed=0"]}],
             "members would hold the same run, and the merged table would average them together: "
             "digits / knn / raw / 0 (smoke_digits and tabular_knn)"),
            ([{"experiment": "smoke_digits", "overrides": ["method=protonet", "protocol=fewshot", "seed=0",
                                                           "method.learner.k_shot=five"]}],
             "experiment=smoke_digits: method.learner.k_shot is 'five', but PrototypicalNetwork's k_shot takes a "
             "whole number"),
            ([{"experiment": "smoke_digits", "overrides": ["method=raw,protonet", "protocol=fewshot", "seed=0",
                                                           "+episode_n_way=abc"]}],
             "experiment=smoke_digits, method=protonet: episode_n_way is 'abc', but PrototypicalNetwork's "
             "n_way takes a whole number"),  # ${oc.select:episode_n_way,5}: the setting given is named
            ([{"experiment": "smoke_digits", "overrides": ["method=protonet,triplet", "protocol=fewshot", "seed=0",
                                                           "method.learner.optimizer.lr=1e-3,fast"]}],
             "experiment=smoke_digits, method=protonet method.learner.optimizer.lr=fast: method.learner.optimizer.lr "
             "is 'fast', but Adam's lr takes a number"),  # a swept setting: each of its values is checked
            ([{"experiment": "smoke_digits", "overrides": ["method=protonet", "protocol=fewshot", "seed=0",
                                                           "method.learner.iterations=0"]}],
             "method.learner.iterations is 0: protonet would be scored untrained under its own name")):
        done = _run_suite(_suite(tmp_path, members), results)
        assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
        assert not (results / "runs").exists()  # nothing ran


def test_every_refused_member_is_named_at_once():
    """A leaderboard with several bad members names them all in one refusal; a good one among them is not named."""
    members = [{"experiment": "smoke_digits", "overrides": ["method=protonet", "protocol=fewshot", "seed=0",
                                                             "method.learner.n_way=1"]},
               {"experiment": "smoke_digits", "overrides": ["method=raw", "protocol=knn", "seed=0"]},
               {"experiment": "no_such_preset", "overrides": []}]
    with pytest.raises(SuiteError) as info:
        check_members(members, [])
    lines = str(info.value).splitlines()
    assert lines[0] == "2 leaderboard members are refused:" and len(lines) == 3
    assert "experiment=smoke_digits: method.learner.n_way is 1, but PrototypicalNetwork's n_way takes a whole " \
           "number of at least 2" in lines[1]
    assert "experiment=no_such_preset: conf/experiment/no_such_preset.yaml does not exist" in lines[2]
    assert len(check_members(members[1:2], [])) == 1


def test_hydra_s_refusals_are_one_line_each_and_members_are_numbered():
    """Hydra writes a missing option over many lines (each option, then its search path) and OmegaConf adds
    full_key / object_type lines: in the list of refused members each is one line, and members that share a
    preset are told apart by their place in the list."""
    members = [{"experiment": "smoke_digits", "overrides": ["method=protonett", "protocol=knn", "seed=0"]},
               {"experiment": "smoke_digits", "overrides": ["method=raw", "protocol=knn", "seed=0"]},
               {"experiment": "smoke_digits", "overrides": ["method=protonet", "method.learner.fooo=1", "seed=0"]},
               {"experiment": "smoke_digits", "overrides": ["method=protonet", "method.learner.k_shot=${nowhere}"]}]
    with pytest.raises(SuiteError) as info:
        check_members(members, [])
    lines = str(info.value).splitlines()
    assert lines[0] == "3 leaderboard members are refused:" and len(lines) == 4, lines
    assert lines[1].startswith("- leaderboard member 1 of 4, experiment=smoke_digits: In 'config': Could not find "
                               "'method/protonett'; available options in 'method': contrastive, cosine, ")
    assert "Config search path" not in lines[1] and lines[1].endswith(", triplet, untrained")
    assert lines[2] == ("- leaderboard member 3 of 4, experiment=smoke_digits: Could not override "
                        "'method.learner.fooo'. To append to your config use +method.learner.fooo=1")
    assert lines[3].startswith("- leaderboard member 4 of 4, experiment=smoke_digits")
    assert "Interpolation key 'nowhere' not found" in lines[3] and "object_type" not in lines[3]


def test_a_member_whose_runs_would_share_a_record_folder_is_refused_by_the_plan():
    """The plan finds what the runner's sweep check would (benchmarks/sweep_collisions.py), before any member runs;
    the same sweep with the value in the method's name passes."""
    lr = "method.learner.optimizer.lr=1e-4,1e-3"
    members = [{"experiment": "smoke_digits", "overrides": ["method=triplet", "protocol=knn", "seed=0", lr]}]
    with pytest.raises(SuiteError) as info:
        check_members(members, [])
    assert str(info.value).startswith("leaderboard member experiment=smoke_digits: this sweep would write several "
                                      "runs into one record folder")
    assert "'method.name=triplet_lr${method.learner.optimizer.lr}'" in str(info.value)
    members[0]["overrides"].append("method.name=triplet_lr${method.learner.optimizer.lr}")
    (plan,) = check_members(members, [])
    assert plan["runs"] == 2
    # several methods: each job's name comes from its own choice of method
    both = [{"experiment": "smoke_digits", "overrides": ["method=protonet,triplet", "protocol=knn", "seed=0", lr]}]
    with pytest.raises(SuiteError, match=re.escape("'method.name=${hydra:runtime.choices.method}_lr"
                                                   "${method.learner.optimizer.lr}'")):
        check_members(both, [])
    both[0]["overrides"].append("method.name=${hydra:runtime.choices.method}_lr${method.learner.optimizer.lr}")
    (plan,) = check_members(both, [])
    assert plan["runs"] == 4 and {key[2] for key in plan["keys"]} == {"protonet_lr0.001", "triplet_lr0.001"}


def test_load_suite_names_the_known_leaderboards():
    with pytest.raises(SuiteError, match="leaderboard_cpu, leaderboard_gpu, leaderboard_smoke"):
        load_suite("leaderboard_nope")


@pytest.mark.parametrize("name", ["leaderboard_smoke", "leaderboard_cpu", "leaderboard_gpu"])
def test_the_shipped_leaderboards_compose(name):
    suite = load_suite(name)
    plan = [check_member(m, []) for m in suite["studies"]]
    studies = [p["study"] for p in plan]
    assert len(set(studies)) == len(studies)
    assert all(p["runs"] > 0 for p in plan)


def test_every_shipped_preset_can_be_a_member():
    """The presets the shipped leaderboards leave out too (the paper presets sweep groups of settings:
    ``train_episode={n_way:30,k_shot:1},{n_way:20,k_shot:5}`` is two values, not four)."""
    in_boards = {m["experiment"] for name in ("leaderboard_smoke", "leaderboard_cpu", "leaderboard_gpu")
                 for m in load_suite(name)["studies"]}
    others = sorted({p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")} - in_boards)
    assert "paper_protonet_mini_imagenet" in others
    plans = {name: check_member({"experiment": name, "overrides": []}, []) for name in others}
    assert plans["paper_protonet_mini_imagenet"]["runs"] == 2


def test_sweeps_hydra_writes_as_functions_are_read_as_hydra_reads_them():
    plan = check_member({"experiment": "smoke_digits", "overrides": [
        "method=protonet,triplet", "protocol=fewshot", "seed=range(0,2)", "method.learner.optimizer.lr=choice(1e-3,1e-2)",
        "method.name=${hydra:runtime.choices.method}_lr${method.learner.optimizer.lr}"]}, [])  # a row per lr
    assert plan["runs"] == 2 * 2 * 2
    assert {k[3] for k in plan["keys"]} == {"0", "1"}


def test_merging_studies_that_hold_the_same_run_is_refused(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "method=raw", "protocol=knn", "study=a",
                           "progress=false", f"results_dir={tmp_path}", *QUIET], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.copytree(tmp_path / "runs" / "a", tmp_path / "runs" / "b")
    (copy,) = (tmp_path / "runs" / "b").rglob("record.json")
    write_json_atomic(copy, read_record(copy) | {"study": "b"})
    with pytest.raises(MergeError, match=r"digits / knn / raw / 0 \(in \S*runs/a and \S*runs/b\)"):
        build("ab", tmp_path, members=["a", "b"])
    assert build("a_only", tmp_path, members=["a"]) == 0
    cli = subprocess.run([sys.executable, "-m", "benchmarks.report", "ab", "--results", str(tmp_path),
                          "--merge", "a", "b"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2 and "hold the same run more than once" in cli.stderr
    missing = subprocess.run([sys.executable, "-m", "benchmarks.report", "a_x", "--results", str(tmp_path),
                              "--merge", "a", "nosuchstudy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "no records of the merged study nosuchstudy" in missing.stderr


def test_records_of_several_results_folders_merge_and_other_schemas_are_refused(tmp_path):
    for folder, method in (("here", "raw"), ("elsewhere", "lmnn")):
        done = subprocess.run([sys.executable, "-m", "benchmarks.run", f"method={method}", "protocol=knn", "study=s",
                               "progress=false", f"results_dir={tmp_path / folder}", *QUIET], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    cmd = [sys.executable, "-m", "benchmarks.report", "s", "--results", str(tmp_path / "here"),
           "--from", str(tmp_path / "elsewhere")]
    merged = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0, merged.stderr[-2000:]
    board = (tmp_path / "here" / "s" / "leaderboard.md").read_text()
    assert "| raw (ref.) " in board and "| lmnn " in board
    (old,) = (tmp_path / "elsewhere" / "runs" / "s").rglob("record.json")
    write_json_atomic(old, read_record(old) | {"schema_version": 0})
    refused = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    assert f"{old} (schema version 0)" in refused.stderr and "Re-run those runs with this code" in refused.stderr


def test_the_same_run_in_two_results_folders_is_refused_and_a_missing_folder_named(tmp_path):
    for folder, episodes in (("here", 20), ("elsewhere", 40)):  # the same run, at two budgets
        done = subprocess.run([sys.executable, "-m", "benchmarks.run", "method=raw", "protocol=knn", "study=s",
                               f"budget.episodes={episodes}", "progress=false", f"results_dir={tmp_path / folder}",
                               *QUIET], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    with pytest.raises(MergeError, match=r"hold the same run more than once.*digits / knn / raw / 0"):
        build("s", tmp_path / "here", None, None, [tmp_path / "elsewhere"])
    with pytest.raises(MergeError, match="no such results folder"):
        build("s", tmp_path / "here", None, None, [tmp_path / "nowhere"])
    # the same folder twice (relatively and absolutely, or --from naming --results' own folder) counts nothing twice
    relative = Path(os.path.relpath(tmp_path / "here"))
    for sources in ([tmp_path / "here"], [relative], [tmp_path / "elsewhere", tmp_path / "elsewhere"]):
        with pytest.raises(MergeError, match=r"the same results folder as .*\(given twice\)"):
            build("s", tmp_path / "here", None, None, sources)
