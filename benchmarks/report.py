"""Build the leaderboard and figures of a study from its records.

    python -m benchmarks.report smoke_digits        # reads results/runs/smoke_digits/**/record.json

Writes results/<study>/leaderboard.csv (long form), leaderboard.md, leaderboard.tex (booktabs), roc.csv,
failed.csv and figures/*.png (and .pdf), and prints the Markdown table. In every table the best mean of
each metric is in bold and the rows not shown to differ from it (paired bootstrap over the same episodes,
queries or class resamples: ``benchmarks.comparison``) are marked ≈.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from benchmarks.comparison import compare_with_best, load_units
from benchmarks.figures import draw_all
from benchmarks.generation_figures import draw_generation
from benchmarks.leaderboard import aggregate, latex, markdown, records_frame, roc_frame
from benchmarks.records import (FAILED_NAME, SCHEMA_VERSION, atomic_write, load_records, read_record,
                                write_csv_atomic)


def update_readme(readme: Path, study: str, text: str) -> bool:
    """Replace the block between ``<!-- leaderboard:<study> -->`` and ``<!-- /leaderboard:<study> -->``."""
    start, end = f"<!-- leaderboard:{study} -->", f"<!-- /leaderboard:{study} -->"
    content = readme.read_text()
    if start not in content or end not in content:
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    body = text.replace("### ", "#### ")
    new = f"{head}{start}\n{body}\n{end}{tail}"
    atomic_write(readme, lambda fh: fh.write(new.encode()))
    return True


def existing_studies(study: str, results_dir: Path | None) -> str:
    """The studies that have records under ``results_dir/runs`` (the nearest name to ``study`` first, as the one
    a typo may have meant), as a sentence; "" where there are none."""
    import difflib

    runs = Path(results_dir) / "runs" if results_dir is not None else None
    found = sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs is not None and runs.is_dir() else []
    if not found:
        return ""
    near = difflib.get_close_matches(study, found, n=1, cutoff=0.6)
    return (f"Did you mean {near[0]}? " if near else "") + f"The studies with records in {runs}: {', '.join(found)}.\n"


def how_to_run(study: str, members: list[str] | None = None, results_dir: Path | None = None) -> str:
    """The command that makes a study's records: its suite, its experiment preset, or (neither exists) a
    sweep that names the study, with the presets there are; after the studies that have records, where
    ``results_dir`` holds some (a misspelled study is named there)."""
    return existing_studies(study, results_dir) + _how_to_make(study, members)


def _how_to_make(study: str, members: list[str] | None = None) -> str:
    conf = Path(__file__).resolve().parent.parent / "conf"
    if (conf / "suite" / f"{study}.yaml").is_file():
        return f"{study} is a suite: run it with\n  python -m benchmarks.suite {study}"
    named = [m for m in (members or [study]) if (conf / "experiment" / f"{m}.yaml").is_file()]
    if named:
        return f"Run the sweep first:\n  python -m benchmarks.run -m experiment={named[0]}"
    presets = sorted(p.stem for p in (conf / "experiment").glob("*.yaml"))
    return (f"No preset is called {study}; run a sweep under that study name, e.g.\n"
            f"  python -m benchmarks.run -m study={study} method=raw,protonet protocol=fewshot dataset=digits\n"
            f"or report a preset's study ({', '.join(presets)})")


class MergeError(ValueError):
    """Studies merged into one leaderboard hold the same (dataset, protocol, method, seed) more than once."""


def _duplicates(records: list[dict]) -> list[str]:
    seen: dict[tuple, str] = {}
    clashes = []
    for rec in records:
        key = (rec.get("dataset"), rec.get("protocol"), rec.get("method"), rec.get("seed"))
        origin = rec.get("_origin", rec.get("study"))  # the results folder and study it was read from
        if key in seen and seen[key] != origin:
            clashes.append(f"{' / '.join(map(str, key))} (in {seen[key]} and {origin})")
        seen.setdefault(key, origin)
    return clashes


class MixedSettingsError(ValueError):
    """The seeds of one table row were trained or scored with different settings."""


# What may differ between the seeds of one row: the seed itself, the saved run a re-evaluation loads (one per
# seed) and its model's digest, how the run was placed (device, CPU threads: they move a trained net as a seed
# does, not what is compared), and where each machine keeps the data and whether it may fetch it (any key
# ending in "root": data_root, a source's root or download_root; "download").
_PER_SEED = frozenset({"seed", "threads", "device", "from_run", "from_run_model_sha256", "download"})


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        elif key not in _PER_SEED and not key.endswith("root"):
            out[f"{prefix}{key}"] = value
    return out


CODE = "code"  # the record's digest of the code it was made by (benchmarks.code_identity), compared as a setting


def _mixed_settings(records: list[dict]) -> list[str]:
    """Rows whose seeds' records were made with different settings (a sweep typed with another budget for
    one seed), each with the first settings that differ and their values per seed."""
    rows: dict[tuple, list[dict]] = {}
    for rec in records:
        rows.setdefault((rec.get("dataset"), rec.get("protocol"), rec.get("method")), []).append(rec)
    found = []
    for key, group in rows.items():
        group = sorted(group, key=lambda rec: str(rec.get("seed")))
        settings = [_flat(rec.get("config") or {}) | {CODE: rec.get("code", "(not recorded)")} for rec in group]
        names = sorted({name for s in settings for name in s})
        differ = [n for n in names if len({repr(s.get(n, "(unset)")) for s in settings}) > 1]
        if differ:
            shown = "; ".join(f"{n}: " + ", ".join(f"{s.get(n, '(unset)')!r} (seed {rec.get('seed')})"
                                                    for s, rec in zip(settings, group)) for n in differ[:3])
            more = f" and {len(differ) - 3} more settings" if len(differ) > 3 else ""
            found.append(f"{' / '.join(map(str, key))}: {shown}{more}")
    return found


class SchemaError(ValueError):
    """Records written with another schema version cannot be merged into a table of this version's."""


def _other_schemas(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        rec = read_record(path)
        if isinstance(rec, dict) and rec.get("schema_version") != SCHEMA_VERSION:
            found.append(f"{path} (schema version {rec.get('schema_version')})")
    return found


def build(study: str, results_dir: Path, readme: Path | None = None, members: list[str] | None = None,
          sources: list[Path] | None = None) -> int:
    """Tables and figures of ``study`` in ``results_dir/<study>/``, from the records under
    ``<folder>/runs/<member>/`` of each of ``members`` (default: the study itself), for ``results_dir`` and each
    results folder in ``sources``. Merged studies must not hold the same (dataset, protocol, method, seed) twice:
    a MergeError names the clashes; records of another schema version raise SchemaError, naming them."""
    records, unreadable, attempts = [], [], []
    missing = [str(f) for f in sources or [] if not Path(f).is_dir()]
    if missing:
        raise MergeError(f"--from {', '.join(missing)}: no such results folder; give folders that hold runs/<study>/")
    given: dict[Path, Path] = {}
    for folder in map(Path, [results_dir, *(sources or [])]):
        if folder.resolve() in given:
            raise MergeError(f"--from {folder}: the same results folder as {given[folder.resolve()]} (given twice), "
                             "so each of its runs would be counted twice; give each results folder once")
        given[folder.resolve()] = folder
    for folder in [results_dir, *(sources or [])]:
        for member in members or [study]:
            runs = Path(folder) / "runs" / member
            found, bad = load_records(runs)
            for rec in found:
                rec["_origin"] = str(runs)
            records += found
            unreadable += bad
            attempts += load_records(runs, FAILED_NAME)[0]
    if members and len(members) > 1:
        empty = [m for m in members if not any((Path(f) / "runs" / m).is_dir() for f in [results_dir, *(sources or [])])]
        if empty:
            raise MergeError(f"{study}: no records of the merged stud{'ies' if len(empty) > 1 else 'y'} "
                             f"{', '.join(empty)} under {results_dir / 'runs'}; run them first, or merge only the "
                             "studies that exist")
    foreign = _other_schemas(unreadable)
    if foreign:
        raise SchemaError(f"{len(foreign)} record(s) were written with another schema version than this code's "
                          f"({SCHEMA_VERSION}), so their fields may not mean what this version's do: "
                          f"{'; '.join(foreign[:3])}. Re-run those runs with this code, or build their table with "
                          "the suite's version that wrote them")
    clashes = _duplicates([r for r in records if r.get("status") == "ok"])
    if clashes:
        raise MergeError(f"{study}: the merged records ({', '.join(map(str, members or [study]))}; results folders "
                         f"{', '.join(str(f) for f in [results_dir, *(sources or [])])}) hold the same run more than once, so their numbers "
                         f"would be averaged together: {'; '.join(clashes[:5])}"
                         f"{f' and {len(clashes) - 5} more' if len(clashes) > 5 else ''}. Give the presets "
                         "different datasets or protocols (or merge fewer studies or folders)")
    mixed = _mixed_settings([r for r in records if r.get("status") == "ok"])
    if mixed:
        raise MixedSettingsError(
            f"{study}: {len(mixed)} row(s) would average seeds made with different settings: {' | '.join(mixed[:3])}"
            f"{f' | and {len(mixed) - 3} more rows' if len(mixed) > 3 else ''}. "
            + ("Seeds made by other code (code: the digest of the modules a run imports) are made again by running "
               "their sweep again as it was typed: a run whose code has changed runs again, the others are skipped. "
               if any(f"{CODE}: " in row for row in mixed) else "")
            + "Re-run the odd seeds with the row's settings, or give each setting its own study or method name "
              "(method.name=<name>_<setting>)")
    where = ", ".join(str(Path(f) / "runs" / m) for f in [results_dir, *(sources or [])] for m in members or [study])
    for path in unreadable:
        print(f"WARNING: cannot read {path} (corrupt or another schema version); that run is left out. "
              "Re-running that configuration replaces the file.", file=sys.stderr)
    if not records:
        print(f"No records under {where}. {how_to_run(study, members, results_dir)}", file=sys.stderr)
        return 2
    long = records_frame(records)
    table = compare_with_best(aggregate(long), long, load_units(records))
    roc = roc_frame(records)
    out = results_dir / study
    write_csv_atomic(out / "leaderboard.csv", table)
    text = markdown(table) if not table.empty else "(no successful runs)\n"
    atomic_write(out / "leaderboard.md", lambda fh: fh.write(text.encode()))
    tex = latex(table) if not table.empty else "% no successful runs\n"
    atomic_write(out / "leaderboard.tex", lambda fh: fh.write(tex.encode()))
    write_csv_atomic(out / "roc.csv", roc)
    failed = long[long["status"] != "ok"][["dataset", "protocol", "method", "seed", "error", "run_dir"]]
    if attempts:  # failed re-runs beside an ok record: listed, never counted in the table
        failed = pd.concat([failed, records_frame(attempts)[failed.columns].assign(
            error=lambda f: "(ok record kept) " + f["error"].astype(str))], ignore_index=True)
    if unreadable:
        failed = pd.concat([failed, pd.DataFrame({"error": ["unreadable record"] * len(unreadable),
                                                  "run_dir": [str(p.parent) for p in unreadable]})], ignore_index=True)
    write_csv_atomic(out / "failed.csv", failed)
    figures = draw_all(table, roc, out / "figures") + draw_generation(records, table, out / "figures") \
        if not table.empty else []
    print(text)
    n_ok = int((long.drop_duplicates("run_dir")["status"] == "ok").sum())
    print(f"{len(records)} records ({n_ok} ok, {len(records) - n_ok} failed, {len(attempts)} failed re-runs beside ok "
          f"records, {len(unreadable)} unreadable) -> {out}/leaderboard.md, "
          f"leaderboard.csv, leaderboard.tex, roc.csv; {len(figures)} figures in {out}/figures/")
    if readme is not None:
        done = update_readme(readme, study, text)
        print(f"README leaderboard for {study} {'updated' if done else 'not found (no markers)'} in {readme}")
    if len(failed):
        print("Failed runs:\n" + failed.to_string(index=False), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", help="the study name (a folder under results/runs/)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder")
    parser.add_argument("--readme", type=Path, default=None,
                        help="also rewrite this README's block between <!-- leaderboard:<study> --> markers")
    parser.add_argument("--from", dest="sources", nargs="+", type=Path, default=None, metavar="RESULTS",
                        help="also read the records of these results folders (e.g. another machine's)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="STUDY",
                        help="build the tables of STUDY (a new name) from the records of these studies together")
    args = parser.parse_args(argv)
    try:
        return build(args.study, args.results, args.readme, members=args.merge, sources=args.sources)
    except (MergeError, SchemaError, MixedSettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
