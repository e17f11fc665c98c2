"""Tune every learner with the same budget on validation classes, then test the chosen values over seeds.

    python -m benchmarks.tune tune_digits_knn             # conf/tune/tune_digits_knn.yaml
    python -m benchmarks.tune tune_digits_knn --dry-run   # check the plan, the spaces and the objective only

The discipline of Musgrave et al.'s "metric learning reality check": hyperparameters are chosen on a
validation split of the *training* classes (``validation=true``: the protocol's own split applied to the
training side), never on the test classes, every learner gets the same number of trials, and the chosen
values are then re-run over several seeds on the test classes, where the learners are compared (the
report's paired test marks the ties with the best).

A tuning file ``conf/tune/<name>.yaml`` names the base runs (``base``: Hydra overrides such as dataset,
backbone, budget, protocol), the ``objective`` (a metric of that protocol) and its ``direction``,
``n_trials`` (the same for every learner), the Optuna sampler's seed, the seed tuning trains with, the test
seeds and the learners. A learner's search space is ``conf/search_space/<method>.yaml`` (override key ->
an Optuna-sweeper range), or the plan's own ``spaces: {<method>: {key: range}}``; a learner without one
(raw, untrained) has nothing to tune and is only tested. A trial whose run fails (a NaN loss, a bad value)
has its record marked failed and scores the worst value there is (-inf or +inf), so the search goes on.

Each learner's search is one Hydra multirun with ``hydra/sweeper=optuna`` (TPE, seeded): trial records go
to ``results/runs/<study>@validation/<method>/trial<N>/``, Optuna's result to
``results/tuning/<study>/<method>/optimization_results.yaml``. A re-run repeats the same trials from their
records (the sampler is seeded and each trial's record is skipped), so an interrupted tuning resumes. The
chosen values and validation scores are written to ``results/<study>/chosen.yaml`` and ``chosen.md``; the
test runs are the study ``<study>`` (``python -m benchmarks.report <study>`` is run at the end).
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from benchmarks import named_yaml, report
from benchmarks.argument_types import ArgumentTypeError
from benchmarks.hydra_messages import missing_option
from benchmarks.leaderboard import lower_is_better
from benchmarks.records import RECORD_NAME, atomic_write, read_record

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
QUIET = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
REQUIRED = ("study", "base", "objective", "direction", "n_trials", "methods")


_PARSER = OverridesParser.create()


class TuneError(ValueError):
    """A tuning file, search space or objective cannot be used; the message names it and the fix."""


def load_plan(name: str, conf: Path = CONF) -> dict:
    """``conf/tune/<name>.yaml``, or the yaml file ``name`` (a plan kept anywhere)."""
    path, known = named_yaml(conf / "tune", name)
    if not path.is_file():
        raise TuneError(f"no tuning plan {name!r}: {path} does not exist. Known: {', '.join(known)}")
    plan = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    missing = [k for k in REQUIRED if k not in plan]
    if missing:
        raise TuneError(f"{path} lacks {', '.join(missing)} (a tuning plan needs {', '.join(REQUIRED)})")
    if plan["direction"] not in ("maximize", "minimize"):
        raise TuneError(f"{path}: direction must be maximize or minimize, not {plan['direction']!r}")
    if int(plan["n_trials"]) < 1:
        raise TuneError(f"{path}: n_trials must be at least 1")
    plan.setdefault("sampler_seed", 0)
    plan.setdefault("tune_seed", 0)
    plan.setdefault("test_seeds", [0, 1, 2])
    plan["path"] = path
    return plan


def search_space(method: str, conf: Path = CONF) -> dict[str, str]:
    """``conf/search_space/<method>.yaml`` as {override key: range}; {} for a learner without one."""
    if not (conf / "method" / f"{method}.yaml").is_file():
        raise TuneError(f"unknown method {method!r}: conf/method/{method}.yaml does not exist")
    path = conf / "search_space" / f"{method}.yaml"
    if not path.is_file():
        return {}
    space = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(space, dict) or not space:
        raise TuneError(f"{path}: expected a mapping of override keys to ranges, e.g. "
                        "`method.learner.optimizer.lr: tag(log, interval(1e-4, 1e-2))`")
    return {str(k): str(v) for k, v in space.items()}


def space_values(key: str, value: str) -> list[tuple[str, str]]:
    """Values of a search-space entry that show the kinds its trials will be given, each as (the override's
    value, as shown): both ends of an ``interval`` and its middle (``interval(1, 5)`` samples numbers with a
    fraction, ``int(interval(1, 5))`` whole ones, as the Optuna sweeper reads them), every value of a
    ``choice`` or ``range``."""
    try:
        override = _PARSER.parse_override(f"{key}={value}")
    except Exception as exc:  # Hydra's parser names what it could not read
        raise TuneError(f"search space {key}: {value!r} cannot be read: {exc}") from None
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):  # a value inside too: int(interval(18, 152)) for ResNet's depths fails there
        inside = (sweep.start + sweep.end) // 2 if isinstance(sweep.start, int) else (sweep.start + sweep.end) / 2
        return [(str(v), str(v)) for v in (sweep.start, inside, sweep.end)]
    if override.is_sweep_override():
        return list(zip(override.sweep_string_iterator(), map(str, override.sweep_iterator())))
    return [(override.get_value_element_as_str(), str(override.value()))]


def check_space(plan: dict, method: str, space: dict[str, str]) -> None:
    """What the trials will be given is checked as a run checks it before reading its data set: the base with
    ``method`` (the budget and every setting against the class it configures), and each key of the space with
    the values it spans (a typo, a missing option or a value of the wrong kind fails now, not in every trial)."""
    from hydra import compose, initialize_config_dir

    from benchmarks.run import ConfigResolutionError, check_run_settings, resolved_config

    base = [*plan["base"], f"method={method}"]
    where = f"{plan['path']}: base {plan['base']} with method={method}"
    source = (f"{plan['path']}: spaces.{method}" if method in (plan.get("spaces") or {})
              else f"conf/search_space/{method}.yaml")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        try:  # with the sweeper the trials run under: a missing Optuna plugin fails here
            cfg = compose("config", overrides=[*base, "hydra/sweeper=optuna"], return_hydra_config=True)
        except Exception as exc:
            raise TuneError(f"{where}: {exc}") from None
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # what each trial's run is given
        try:
            resolved_config(job)
            check_run_settings(job)
        except (ConfigResolutionError, ValueError) as exc:
            raise TuneError(f"{where}: {exc}") from None
        for key, value in space.items():
            if OmegaConf.select(cfg, key, default="<missing>") == "<missing>":
                raise TuneError(f"{source}: {key} is not a key of the {method} config; "
                                "fix the key (compose with --cfg job to see them)")
            def refusal(one: str) -> Exception | None:
                try:
                    trial = compose("config", overrides=[*base, f"{key}={one}"])
                    resolved_config(trial)
                    check_run_settings(trial)
                except Exception as exc:
                    return exc
                return None

            for one, shown in space_values(key, value):
                exc = refusal(one)
                if exc is None:
                    continue
                # ours name the setting; Hydra's name a missing option (backbone=conv5)
                cause = (str(exc) if isinstance(exc, ArgumentTypeError) else missing_option(exc)
                         if isinstance(exc, MissingConfigException) else str(exc).splitlines()[0])
                sweep = _PARSER.parse_override(f"{key}={value}").value()
                whole = (f"int({value.strip()})" if "whole number" in cause and isinstance(sweep, IntervalSweep)
                         and isinstance(sweep.start, float) else None)
                # the hint only where whole numbers would fit: int(interval(1.0, 5.0)) still gives n_way=1
                fits = whole is not None and all(refusal(v) is None for v, _ in space_values(key, whole))
                hint = " (int(interval(a, b)) samples whole numbers)" if fits else ""
                raise TuneError(f"{source}: {key}: {value} gives {shown}: {cause}{hint}") from None


def _run(command: list[str]) -> None:
    print("$ " + " ".join(command[1:]), flush=True)
    done = subprocess.run(command)
    if done.returncode != 0:
        raise TuneError(f"`{' '.join(command[1:3])} ...` failed (exit {done.returncode}); finished runs are kept: "
                        "fix the cause and run the tuning again, which skips them")


def check_objective(plan: dict, record: dict) -> float:
    """The objective is a metric the protocol reports (read from a record of it: the probe's) and the
    direction agrees with it; its value in ``record``."""
    objective, protocol, reported = str(plan["objective"]), record["protocol"], sorted(record["metrics"])
    if objective not in record["metrics"]:
        raise TuneError(f"{plan['path']}: objective={objective} is not a metric of the {protocol} protocol; it "
                        f"reports {', '.join(reported)}: give one of those as the plan's objective")
    expected = "minimize" if lower_is_better(objective) else "maximize"
    if plan["direction"] != expected:
        raise TuneError(f"{plan['path']}: {objective} is {'lower' if expected == 'minimize' else 'higher'}-is-better "
                        f"in the leaderboard, so direction must be {expected}, not {plan['direction']} (it would "
                        "choose the worst values)")
    return float(record["metrics"][objective]["mean"])


def probe(plan: dict, results: Path) -> float:
    """One untrained run on the validation side (raw features), before any training: the validation split
    fits the protocol, and the objective is one of its metrics (``check_objective``); raw's score."""
    run_dir = results / "runs" / f"{plan['study']}@validation" / "probe"
    try:
        _run([sys.executable, "-m", "benchmarks.run", *plan["base"], "method=raw", "validation=true",
              f"study={plan['study']}@validation", f"seed={plan['tune_seed']}", f"results_dir={results}",
              f"run_dir={run_dir}", *QUIET])
    except TuneError:
        error = (read_record(run_dir / RECORD_NAME) or {}).get("error") or {}
        if not error.get("message"):
            raise
        raise TuneError(f"{plan['path']}: the probe (raw features on the validation side, before any training) "
                        f"failed: {error.get('type', 'Error')}: {error['message']}") from None
    return check_objective(plan, read_record(run_dir / RECORD_NAME))


def tune_method(plan: dict, method: str, space: dict[str, str], results: Path) -> dict:
    study = plan["study"]
    sweep_dir = results / "tuning" / study / method
    trial_dir = f"{results}/runs/{study}@validation/{method}/trial" + "${hydra:job.num}"
    _run([sys.executable, "-m", "benchmarks.run", "-m", "hydra/sweeper=optuna", *plan["base"], f"method={method}",
          "validation=true", f"study={study}@validation", f"objective={plan['objective']}",
          f"seed={plan['tune_seed']}", f"results_dir={results}", f"run_dir={trial_dir}",
          f"hydra.sweeper.direction={plan['direction']}", f"hydra.sweeper.n_trials={plan['n_trials']}",
          "hydra.sweeper.n_jobs=1", f"hydra.sweeper.sampler.seed={plan['sampler_seed']}",
          f"hydra.sweeper.study_name={study}.{method}", f"hydra.sweep.dir={sweep_dir}",
          *[f"{k}={v}" for k, v in space.items()], *QUIET])
    found = OmegaConf.to_container(OmegaConf.load(sweep_dir / "optimization_results.yaml"))
    if not math.isfinite(float(found["best_value"])):
        raise TuneError(f"every trial of {method} failed (their records under {results}/runs/{study}@validation/"
                        f"{method}/ say why); narrow conf/search_space/{method}.yaml and tune again")
    return {"best_params": found["best_params"], "best_value": float(found["best_value"]),
            "n_trials": int(plan["n_trials"])}


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def chosen_markdown(plan: dict, chosen: dict) -> str:
    lines = [f"Chosen on the validation split of the training side ({plan['objective']}, {plan['direction']}, "
             f"{plan['n_trials']} Optuna trials per learner, sampler seed {plan['sampler_seed']}, "
             f"tuning seed {plan['tune_seed']}):", "",
             f"| method | validation {plan['objective']} | chosen values |", "| --- | ---: | --- |"]
    for method, entry in chosen.items():
        values = ", ".join(f"`{k.removeprefix('method.learner.')}={_format(v)}`"
                           for k, v in entry["best_params"].items()) or "(nothing to tune)"
        score = "—" if entry["best_value"] is None else f"{entry['best_value']:.3f}"
        lines.append(f"| {method} | {score} | {values} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a tuning plan in conf/tune/ (or a yaml file)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides added to the plan's base, e.g. threads=1")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--readme", type=Path, default=None,
                        help="rewrite this README's block between <!-- leaderboard:<study> --> markers")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the plan, the search spaces and (by one untrained run in a temporary folder) "
                             "the validation split and the objective; train nothing, keep nothing")
    parser.add_argument("--n-trials", type=int, default=None,
                        help="trials per learner instead of the plan's (the same for every learner; for a quick try)")
    args = parser.parse_intermixed_args(argv)
    results = args.results.resolve()
    try:
        plan = load_plan(args.name)
        plan["base"] = [*plan["base"], *args.overrides]
        if args.n_trials is not None:
            if args.n_trials < 1:
                raise TuneError("--n-trials must be at least 1")
            plan["n_trials"] = args.n_trials
        given = plan.get("spaces") or {}  # a plan may give a learner's space itself, instead of its file
        spaces = {m: {str(k): str(v) for k, v in given[m].items()} if m in given else search_space(m)
                  for m in plan["methods"]}
        for method, space in spaces.items():
            check_space(plan, method, space)
    except TuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tuned = [m for m, s in spaces.items() if s]
    print(f"{plan['study']}: tune {len(tuned)} learners x {plan['n_trials']} trials on the validation split "
          f"({plan['objective']}, {plan['direction']}), then test {len(spaces)} learners x seeds {plan['test_seeds']}; "
          f"nothing to tune: {[m for m, s in spaces.items() if not s]}", flush=True)
    if args.dry_run:  # the probe too, in a folder of its own that is then removed: nothing is kept
        with tempfile.TemporaryDirectory(prefix="tune_dry_run_") as scratch:
            try:
                raw_score = probe(plan, Path(scratch))
            except TuneError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        print(f"probe: raw scores {plan['objective']}={raw_score:.4f} on the validation side; the plan can run")
        return 0
    study, start, chosen = plan["study"], time.perf_counter(), {}
    try:
        raw_score = probe(plan, results)
        if "raw" not in plan["methods"]:
            chosen["raw (probe, not tested)"] = {"best_params": {}, "best_value": raw_score, "n_trials": 0}
        for method in plan["methods"]:
            if spaces[method]:
                chosen[method] = tune_method(plan, method, spaces[method], results)
            else:  # nothing to tune; raw's validation score is the probe's
                chosen[method] = {"best_params": {}, "best_value": raw_score if method == "raw" else None,
                                  "n_trials": 0}
        tuned_at = time.perf_counter()
        out = results / study
        atomic_write(out / "chosen.yaml", lambda fh: fh.write(OmegaConf.to_yaml(OmegaConf.create(
            {"plan": args.name, "objective": plan["objective"], "direction": plan["direction"],
             "methods": chosen})).encode()))
        text = chosen_markdown(plan, chosen)
        atomic_write(out / "chosen.md", lambda fh: fh.write(text.encode()))
        print(text, flush=True)
        seeds = ",".join(str(s) for s in plan["test_seeds"])
        for method in plan["methods"]:
            values = [f"{k}={v}" for k, v in chosen[method]["best_params"].items()]
            _run([sys.executable, "-m", "benchmarks.run", "-m", *plan["base"], f"method={method}", *values,
                  f"study={study}", f"seed={seeds}", f"results_dir={results}", *QUIET])
    except TuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    end = time.perf_counter()
    code = report.build(study, results, args.readme)
    print(f"{study}: tuning {tuned_at - start:.0f} s, testing {end - tuned_at:.0f} s; chosen values in "
          f"{results / study / 'chosen.md'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
