"""Time and peak memory of the chunked retrieval metrics against pytorch-metric-learning's AccuracyCalculator.

    python -m benchmarks.retrieval_scale                       # 100,000 x 128 compared, then 1,000,000 x 128
    python -m benchmarks.retrieval_scale --queries 10000       # the large case: 10,000 queries vs 1M gallery
    python -m benchmarks.retrieval_scale --large-n 0           # the compared case only

Synthetic, seeded, clustered embeddings shaped like Stanford Online Products: ``--dim`` (128) dimensions,
classes of about ten (two each plus a uniform draw, so every class has at least two samples), unit-norm
class centres plus Gaussian noise (``--noise``), L2-normalised; the distance is pytorch-metric-learning's
default ``LpDistance()`` (L2 on normalised embeddings), which pml's default ``FaissKNN`` (``IndexFlatL2``)
ranks identically on these unit-norm embeddings.

Case 1, ``--n`` x ``--dim`` all-vs-all: ours (``benchmarks.retrieval_metrics.per_query``) against
``AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
k="max_bin_count")`` with faiss (pml's default ``FaissKNN``) and without it (faiss hidden from the child;
pml then gets ``CustomKNN(distance, batch_size=1024)``, and is also tried with a bare ``CustomKNN(distance)``,
which builds the full n x n matrix). Case 2, ``--large-n`` gallery: all-vs-all, or ``--queries`` separate
queries ranked against the whole gallery (the peak memory of the chunked search does not depend on the number
of queries); ours, and pml's attempt. Each run is a fresh subprocess under an address-space limit
(``--memory-limit-gb``, RLIMIT_AS), so no child can exceed it; its peak RSS comes from ``os.wait4``. A
"baseline" child only imports the libraries and builds the data: the other peaks minus it are the evaluation's
own memory. The script prints; it never fails on a target.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRICS = {"p_at_1": "precision_at_1", "r_precision": "r_precision", "map_at_r": "mean_average_precision_at_r"}
PML_BATCH = 1024


# ------------------------------------------------------------------------------------------ in the child

def make_embeddings(n: int, dim: int, n_classes: int, noise: float, seed: int, labels=None, noise_seed: int = 1):
    """(n, dim) unit-norm float32 embeddings around unit-norm class centres (drawn from ``seed``), and their
    labels (drawn too unless given); built in chunks so that building them costs no more than the embeddings
    themselves. Different ``noise_seed``s give different samples around the same centres."""
    import torch

    if labels is None and n < 2 * n_classes:
        raise ValueError(f"{n} samples cannot give {n_classes} classes two samples each: lower --classes")
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(n_classes, dim, generator=gen), dim=1)
    if labels is None:
        labels = torch.cat([torch.arange(n_classes).repeat(2), torch.randint(0, n_classes, (n - 2 * n_classes,),
                                                                             generator=gen)])
        labels = labels[torch.randperm(n, generator=gen)]
    emb = torch.empty(n, dim)
    noise_gen = torch.Generator().manual_seed(seed * 1_000_003 + noise_seed)
    for start in range(0, n, 65536):
        rows = slice(start, start + 65536)
        block = centres[labels[rows]] + noise / dim ** 0.5 * torch.randn(len(labels[rows]), dim, generator=noise_gen)
        emb[rows] = torch.nn.functional.normalize(block, dim=1)
    return emb, labels


def make_case_data(case: dict):
    """(query_emb, query_labels, gallery_emb, gallery_labels); the gallery is None for all-vs-all."""
    import torch

    emb, labels = make_embeddings(case["n"], case["dim"], case["classes"], case["noise"], case["seed"])
    if not case["queries"]:
        return emb, labels, None, None
    query_labels = torch.randint(0, case["classes"], (case["queries"],),
                                 generator=torch.Generator().manual_seed(case["seed"] + 2))
    query, _ = make_embeddings(case["queries"], case["dim"], case["classes"], case["noise"], case["seed"],
                               labels=query_labels, noise_seed=2)
    return query, query_labels, emb, labels


def run_ours(distance, query, query_labels, gallery, gallery_labels) -> dict:
    from benchmarks.retrieval_metrics import per_query

    values = per_query(query, query_labels, distance, (1,), gallery_emb=gallery, gallery_labels=gallery_labels)
    return {name: float(values[name].mean()) for name in METRICS}


def run_pml(distance, knn: str, query, query_labels, gallery, gallery_labels) -> dict:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    knn_func = {"faiss": None,  # pml's own default, FaissKNN()
                "custom_batched": CustomKNN(distance, batch_size=PML_BATCH),
                "custom": CustomKNN(distance)}[knn]
    calc = AccuracyCalculator(include=tuple(METRICS.values()), k="max_bin_count", knn_func=knn_func,
                              device=torch.device("cpu"))
    if gallery is None:
        theirs = calc.get_accuracy(query, query_labels)
    else:
        theirs = calc.get_accuracy(query, query_labels, gallery, gallery_labels, ref_includes_query=False)
    return {ours: float(theirs[name]) for ours, name in METRICS.items()}


def child(case: dict) -> None:
    """Run one case and print one JSON line: the means and the evaluation's seconds."""
    if not case["faiss"]:
        sys.modules["faiss"] = None  # as if faiss were not installed, for pml and for us
    import torch
    from pytorch_metric_learning.distances import LpDistance

    torch.set_num_threads(case["threads"])
    if case["faiss"]:
        import faiss
        faiss.omp_set_num_threads(case["threads"])
    data = make_case_data(case)
    start = time.perf_counter()
    if case["impl"] == "ours":
        means = run_ours(LpDistance(), *data)
    elif case["impl"] == "pml":
        means = run_pml(LpDistance(), case["knn"], *data)
    else:
        means = {}
    print(json.dumps({"means": means, "seconds": time.perf_counter() - start}))


# ----------------------------------------------------------------------------------------- in the parent

def spawn(case: dict, limit_bytes: int, timeout_s: float) -> dict:
    """Run ``case`` in a fresh interpreter under RLIMIT_AS; its result, peak RSS (MiB) and any error."""
    threads = str(case["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.retrieval_scale", "--child", json.dumps(case)],
                                cwd=ROOT, env=env, stdout=out, stderr=err, preexec_fn=limit)
        status, usage, timed_out = wait_with_usage(proc, timeout_s)
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = {"peak_mib": usage.ru_maxrss / 1024, "wall_s": wall, "ok": False, "error": None}
    code = os.waitstatus_to_exitcode(status)
    if code == 0 and stdout.strip():
        result.update(json.loads(stdout.strip().splitlines()[-1]), ok=True)
    else:
        last = [line for line in stderr.strip().splitlines() if line.strip()][-1:] or [f"exit status {code}"]
        result["error"] = ("timed out after %.0f s" % timeout_s) if timed_out else last[0][:300]
    return result


def wait_with_usage(proc: subprocess.Popen, timeout_s: float):
    """Wait for ``proc`` (killing it after ``timeout_s``); its wait status and resource usage."""
    deadline = time.monotonic() + timeout_s
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage, timed_out
        if time.monotonic() > deadline and not timed_out:
            proc.kill()
            timed_out = True
        time.sleep(0.2)


def describe(label: str, case: dict, result: dict, baseline_mib: float | None) -> str:
    shape = f"{case['queries'] or case['n']:>9,} x {case['n']:>9,}"
    extra = f"{result['peak_mib'] - baseline_mib:8.0f}" if baseline_mib is not None else " " * 8
    if not result["ok"]:
        return f"{label:<34} {shape}  {'-':>8}  {result['peak_mib']:8.0f} {extra}  FAILED: {result['error']}"
    means = result["means"]
    values = "  ".join(f"{means[m]:.6f}" for m in METRICS) if means else ""
    return f"{label:<34} {shape}  {result['seconds']:8.1f}  {result['peak_mib']:8.0f} {extra}  {values}"


def compare(ours: dict, theirs: dict) -> str:
    if not (ours["ok"] and theirs["ok"]):
        return "    not compared: one side failed"
    diff = max(abs(ours["means"][m] - theirs["means"][m]) for m in METRICS)
    same = "identical (to 1e-6)" if diff <= 1e-6 else "DIFFERENT"
    return (f"    values {same}: max |ours - pml| = {diff:.2e}; time ours/pml = "
            f"{ours['seconds'] / theirs['seconds']:.2f} ({ours['seconds']:.1f} s vs {theirs['seconds']:.1f} s)")


def run_group(title: str, base: dict, runs: list[tuple[str, dict]], args) -> dict[str, dict]:
    """Spawn the baseline then each run of one data case; print a row each; return the results by label."""
    print(f"\n{title}")
    print(f"{'run':<34} {'queries x gallery':>21}  {'eval s':>8}  {'peak MiB':>8} {'extra':>8}  "
          "P@1       R-prec    MAP@R")
    limit = int(args.memory_limit_gb * 2 ** 30)
    results = {}
    baseline = spawn(dict(base, impl="baseline", faiss=False, knn=None), limit, args.timeout)
    print(describe("baseline (imports + data)", base, baseline, None), flush=True)
    for label, overrides in runs:
        case = dict(base, **overrides)
        results[label] = spawn(case, limit, args.timeout)
        print(describe(label, case, results[label], baseline["peak_mib"]), flush=True)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="samples of the compared all-vs-all case (0: skip it)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=None, help="classes of the compared case (default n/10)")
    parser.add_argument("--large-n", type=int, default=1_000_000, help="gallery of the large case (0: skip it)")
    parser.add_argument("--large-classes", type=int, default=None,
                        help="classes of the large case (default large-n/10)")
    parser.add_argument("--queries", type=int, default=0,
                        help="large case: this many separate queries against the whole gallery (0: all-vs-all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--noise", type=float, default=1.6, help="noise norm around the unit class centres")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-limit-gb", type=float, default=8.0, help="RLIMIT_AS of every child")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before a child is killed")
    parser.add_argument("--no-pml", action="store_true", help="run only ours")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))

    try:
        import faiss  # noqa: F401  (only whether it is there)
        with_faiss = [True, False]
    except ImportError:
        with_faiss = [False]
        print("faiss is not installed: only the torch path runs (pip install 'simbench[faiss]' for both)")
    print(f"{args.threads} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"memory limit {args.memory_limit_gb:g} GiB per child; dim {args.dim}, noise {args.noise}, seed {args.seed}")
    base = dict(dim=args.dim, queries=0, noise=args.noise, seed=args.seed, threads=args.threads)
    if args.n:
        compared_case(dict(base, n=args.n, classes=args.classes or args.n // 10), with_faiss, args)
    if args.large_n:
        large = dict(base, n=args.large_n, classes=args.large_classes or args.large_n // 10, queries=args.queries)
        large_case(large, with_faiss, args)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


def compared_case(base: dict, with_faiss: list[bool], args) -> None:
    runs = []
    for faiss in with_faiss:
        tag = "faiss" if faiss else "no faiss"
        runs.append((f"ours ({tag})", dict(impl="ours", faiss=faiss, knn=None)))
        if not args.no_pml:
            knn = "faiss" if faiss else "custom_batched"
            runs.append((f"pml ({'FaissKNN' if faiss else f'CustomKNN batch {PML_BATCH}'})",
                         dict(impl="pml", faiss=faiss, knn=knn)))
    if not args.no_pml:
        runs.append(("pml (CustomKNN, no batch)", dict(impl="pml", faiss=False, knn="custom")))
    results = run_group(f"Case 1: all-vs-all, {base['n']:,} x {base['dim']}, {base['classes']:,} classes",
                        base, runs, args)
    if args.no_pml:
        return
    print()
    for faiss in with_faiss:
        ours = results[f"ours ({'faiss' if faiss else 'no faiss'})"]
        theirs = results[f"pml ({'FaissKNN' if faiss else f'CustomKNN batch {PML_BATCH}'})"]
        print(f"  {'with' if faiss else 'without'} faiss:")
        print(compare(ours, theirs))


def large_case(large: dict, with_faiss: list[bool], args) -> None:
    runs = []
    for faiss in with_faiss:
        tag = "faiss" if faiss else "no faiss"
        runs.append((f"ours ({tag})", dict(impl="ours", faiss=faiss, knn=None)))
        if not args.no_pml:
            runs.append((f"pml attempt ({'FaissKNN' if faiss else f'CustomKNN batch {PML_BATCH}'})",
                         dict(impl="pml", faiss=faiss, knn="faiss" if faiss else "custom_batched")))
    layout = (f"{large['queries']:,} queries vs the gallery" if large["queries"] else "all-vs-all")
    run_group(f"Case 2: {large['n']:,} x {large['dim']} gallery, {large['classes']:,} classes, {layout}",
              large, runs, args)


if __name__ == "__main__":
    main()
