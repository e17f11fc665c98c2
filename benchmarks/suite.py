"""Run a leaderboard: several study presets one after the other, then one merged table.

    python -m benchmarks.suite leaderboard_smoke             # what CI runs first (each protocol's learners on digits)
    python -m benchmarks.suite leaderboard_cpu               # every learner, every offline data set, 3 seeds
    python -m benchmarks.suite leaderboard_gpu device=cuda   # the full-size studies, on a GPU
    python -m benchmarks.suite leaderboard_cpu --dry-run     # check every preset and grid, run nothing
    python -m benchmarks.suite leaderboard_smoke --regress   # then each member against results/reference/

A leaderboard is a file ``conf/suite/<name>.yaml`` listing experiment presets (``conf/experiment/``), each
an ordinary study with its own records under ``results/runs/<study>/``; arguments after the name are
Hydra overrides given to every member (e.g. ``threads=1``, ``device=cuda``, ``results_dir=...``).

Before anything runs, every member's grid is composed (each method x protocol x dataset it sweeps), so a
typo in the last preset fails in seconds, not after an hour. Members run in order, each a Hydra multirun
(records already there are skipped, so an interrupted leaderboard resumes where it stopped). Then the
records of all members are merged into ``results/<name>/`` (leaderboard.md/.csv/.tex and figures, as
``benchmarks.report`` writes them) and ``results/<name>/suite.json`` holds each member's wall time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from benchmarks import named_yaml, regress, report
from benchmarks.hydra_messages import one_line
from benchmarks.records import atomic_write, load_records
from benchmarks.sweep_collisions import as_job, grid_collisions, refusal, sweep_values
from benchmarks.run import check_run_settings

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
REFERENCES = REPO / "results" / "reference"
SWEPT_GROUPS = ("method", "protocol", "dataset", "backbone", "budget")  # config groups a preset may sweep
QUIET = ["hydra/job_logging=none", "hydra/hydra_logging=none"]


class SuiteError(ValueError):
    """A leaderboard file or one of its presets cannot run; the message names it and the fix."""


def load_suite(name: str, conf: Path = CONF) -> dict:
    """``conf/suite/<name>.yaml``, or the yaml file ``name`` (a leaderboard kept anywhere)."""
    path, known = named_yaml(conf / "suite", name)
    if not path.is_file():
        raise SuiteError(f"no leaderboard {name!r}: {path} does not exist. Known: {', '.join(known)}")
    suite = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    members = suite.get("studies") if isinstance(suite, dict) else None
    if not members or not all(isinstance(m, dict) and "experiment" in m for m in members):
        raise SuiteError(f"{path}: expected `studies:` as a list of entries `- experiment: <preset>` "
                         "(optionally with `overrides: [key=value, ...]`)")
    return {"name": path.stem, "path": path, "description": suite.get("description", ""),
            "studies": [{"experiment": m["experiment"], "overrides": list(m.get("overrides", []))} for m in members]}


_PARSER = OverridesParser.create()


def check_member(member: dict, overrides: list[str], conf: Path = CONF,
                 position: tuple[int, int] | None = None) -> dict:
    """Compose ``member``'s preset once per option of each config group it sweeps (the other groups at their
    first option); return its study name and grid size. A missing preset or option, a bad override, or a
    setting of the wrong kind for the class it configures (``argument_types``), raises SuiteError naming it."""
    experiment = member["experiment"]
    # the member's place in the list where there are several (two members may share a preset)
    label = f"leaderboard member {f'{position[0]} of {position[1]}, ' if position else ''}experiment={experiment}"
    if not (conf / "experiment" / f"{experiment}.yaml").is_file():
        raise SuiteError(f"{label}: conf/experiment/{experiment}.yaml does not exist")
    plain, swept = [], {}  # an override with a comma (method=raw,lmnn) is a sweep: it replaces the preset's
    for override in [*member["overrides"], *overrides]:
        key, _, value = override.partition("=")
        try:
            sweep = _PARSER.parse_override(override).is_sweep_override()
        except Exception as exc:  # Hydra's parser names what it could not read
            raise SuiteError(f"{label}: {override!r}: {one_line(exc)}") from None
        if sweep and not override.startswith(("hydra", "+", "~")):
            swept[key] = value
        else:
            plain.append(override)
    base = [f"experiment={experiment}", *plain]
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        try:
            cfg = compose("config", overrides=base, return_hydra_config=True)
        except Exception as exc:  # Hydra's errors name the bad key or option
            raise SuiteError(f"{label}: {one_line(exc)}") from None
        params = dict(cfg.hydra.sweeper.get("params") or {})
        for override in plain:  # a single value on the command line replaces the preset's sweep of that key
            params.pop(override.partition("=")[0], None)
        params |= swept
        study = cfg.study
        grid = {g: sweep_values(g, params[g]) for g in SWEPT_GROUPS if g in params}
        firsts = {g: values[0] for g, values in grid.items()}

        seen: dict[tuple, dict] = {}  # each choice composed once (the groups' first values come up again)

        def checked(choice: list[str]) -> dict:
            """The member's config with ``choice``, composed and checked as a run checks it before reading data
            (as its job: ``${hydra:runtime.choices.method}`` is its own method); the names its records carry."""
            if tuple(choice) in seen:
                return seen[tuple(choice)]
            try:
                one = compose("config", overrides=base + choice, return_hydra_config=True)
                with as_job(one):
                    job = OmegaConf.masked_copy(one, [k for k in one if k != "hydra"])
                    check_run_settings(job)
                    seen[tuple(choice)] = {g: str(job[g].name) for g in ("dataset", "protocol", "method")}
                    return seen[tuple(choice)]
            except Exception as exc:  # Hydra's errors name the bad key or option; ours the setting
                where = f", {' '.join(choice)}" if choice else ""
                raise SuiteError(f"{label}{where}: {one_line(exc)}") from None

        # the (dataset, protocol, method) names the member's records will carry: a swept group's come from
        # its options, the others from the composed config
        names = {g: set() for g in ("dataset", "protocol", "method")}
        for group, name in checked([f"{g}={v}" for g, v in firsts.items()]).items():
            names[group].add(name)  # also the member's only config, where it sweeps no group
        for group, values in grid.items():
            for value in values:
                one = checked([f"{g}={value if g == group else v}" for g, v in firsts.items()])
                if group in names:
                    names[group].add(one[group])
        for key in params.keys() - set(SWEPT_GROUPS):  # a swept setting: each value, the groups at their first
            for value in sweep_values(key, params[key]):
                checked([*(f"{g}={v}" for g, v in firsts.items()), f"{key}={value}"])
        shared = refusal(grid_collisions(base, {k: sweep_values(k, v) for k, v in params.items()}))
        if shared is not None:  # two of its runs would write one record folder
            raise SuiteError(f"{label}: {shared}")
    runs = 1
    for key, value in params.items():
        runs *= len(sweep_values(key, value))
    seeds = set(sweep_values("seed", params["seed"])) if "seed" in params else {str(cfg.seed)}
    keys = {(d, p, m, s) for d in names["dataset"] for p in names["protocol"] for m in names["method"] for s in seeds}
    return {"experiment": experiment, "study": study, "runs": runs, "keys": keys}


def check_members(members: list[dict], overrides: list[str], conf: Path = CONF) -> list[dict]:
    """``check_member`` for each member, with its overrides kept; every member refused is named in one
    SuiteError, so one dry run shows all there is to fix."""
    plan, refused = [], []
    for i, member in enumerate(members, 1):
        position = (i, len(members)) if len(members) > 1 else None
        try:
            plan.append(check_member(member, overrides, conf, position) | {"overrides": member["overrides"]})
        except SuiteError as exc:
            refused.append(str(exc))
    if len(refused) == 1:
        raise SuiteError(refused[0])
    if refused:
        raise SuiteError(f"{len(refused)} leaderboard members are refused:\n" + "\n".join(f"- {r}" for r in refused))
    return plan


def clashes(plan: list[dict]) -> list[str]:
    """(dataset, protocol, method, seed) runs that two members would both hold (their merged table would
    average them together), as 'name (member a and member b)'."""
    found = []
    for i, first in enumerate(plan):
        for second in plan[i + 1:]:
            for key in sorted(first["keys"] & second["keys"]):
                found.append(f"{' / '.join(key)} ({first['study']} and {second['study']})")
    return found


def study_times(results: Path, study: str) -> dict:
    """From a study's records: its ok runs, the compute they took (the sum of their total_s) and the span from
    the first run's start to the last one's end (the wall time, if it ran in one go)."""
    from datetime import datetime

    records = [r for r in load_records(results / "runs" / study)[0] if r.get("status") == "ok"]
    if not records:
        return {"ok_runs": 0, "compute_s": 0.0, "span_s": 0.0}
    starts = [datetime.fromisoformat(r["started"]) for r in records]
    ends = [datetime.fromisoformat(r["finished"]) for r in records]
    return {"ok_runs": len(records), "compute_s": round(sum(r["timings"]["total_s"] for r in records), 1),
            "span_s": (max(ends) - min(starts)).total_seconds()}


def run_member(member: dict, overrides: list[str]) -> float:
    command = [sys.executable, "-m", "benchmarks.run", "-m", f"experiment={member['experiment']}",
               *member["overrides"], *overrides, *QUIET]
    print("$ " + " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command)
    if done.returncode != 0:
        raise SuiteError(f"experiment={member['experiment']} failed (exit {done.returncode}); its finished runs are "
                         "kept: fix the cause and run the leaderboard again, which skips them")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a leaderboard in conf/suite/ (leaderboard_smoke, leaderboard_cpu, leaderboard_gpu)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every member, e.g. threads=1")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="the results folder (also passed to the runs as results_dir)")
    parser.add_argument("--readme", type=Path, default=None,
                        help="rewrite this README's block between <!-- leaderboard:<name> --> markers")
    parser.add_argument("--dry-run", action="store_true", help="check every member's grid, run nothing")
    parser.add_argument("--regress", action="store_true",
                        help="then check each member that has a reference (results/reference/<study>.csv) against it")
    args = parser.parse_intermixed_args(argv)
    overrides = list(args.overrides)
    if not any(o.startswith("results_dir=") for o in overrides):
        overrides.append(f"results_dir={args.results.resolve()}")
    try:
        suite = load_suite(args.name)
        name = suite["name"]
        plan = check_members(suite["studies"], overrides)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    studies = [p["study"] for p in plan]
    if len(set(studies)) != len(studies):
        print(f"error: {suite['path']}: two members write the same study ({studies}); give each preset its own "
              "`study:`", file=sys.stderr)
        return 2
    clash = clashes(plan)
    if clash:
        print(f"error: {suite['path']}: members would hold the same run, and the merged table would average them "
              f"together: {'; '.join(clash[:5])}{f' and {len(clash) - 5} more' if len(clash) > 5 else ''}. Give "
              "them different datasets, protocols or methods", file=sys.stderr)
        return 2
    print(f"{name}: {len(plan)} studies, {sum(p['runs'] for p in plan)} runs: "
          + ", ".join(f"{p['study']} ({p['runs']})" for p in plan), flush=True)
    if args.dry_run:
        return 0
    walls, start = {}, time.perf_counter()
    try:
        for member in plan:
            walls[member["study"]] = run_member(member, overrides)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = time.perf_counter() - start
    try:
        code = report.build(name, args.results, args.readme, members=studies)
    except (report.MergeError, report.SchemaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {"name": name, "overrides": overrides, "wall_s": round(total, 1),
               "studies": [{"study": p["study"], "experiment": p["experiment"], "runs": p["runs"],
                            "wall_s": round(walls[p["study"]], 1)} | study_times(args.results, p["study"])
                           for p in plan]}
    out = args.results / name / "suite.json"
    atomic_write(out, lambda fh: fh.write(json.dumps(summary, indent=2).encode()))
    print(f"{name}: {sum(p['runs'] for p in plan)} runs in {total:.0f} s ("
          + ", ".join(f"{s} {w:.0f} s" for s, w in walls.items()) + f"); wall times in {out}")
    if code != 0:
        return code
    if args.regress:
        failed = []
        for study in studies:
            reference = REFERENCES / f"{study}.csv"
            if reference.is_file():
                report.build(study, args.results)  # the member's own table, which regress reads
                if regress.main([study, "--results", str(args.results), "--reference", str(reference)]) != 0:
                    failed.append(study)
        if failed:
            print(f"error: regression check failed for {failed}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
