"""Speed against the peer libraries, side by side in one run (issue 3). A benchmark, not a test: it prints
the times, the ratios and the accuracy figures beside them, and says per row whether the issue's target
was met; it never fails on a missed target.

    python -m benchmarks.speed                                   # every row, the issue's sizes
    python -m benchmarks.speed --only lmnn,fewshot --repeats 5   # some rows
    python -m benchmarks.speed --quick                           # tiny sizes: checks the script, measures nothing
    python -m benchmarks.speed --dataset fashion_mnist           # few-shot and triplet rows on Fashion-MNIST

Rows (ours is always built from its ``conf/method`` yaml, as a run would build it):

- ``lmnn``: fit time of ``lmnn.yaml`` (300 iterations) against ``metric_learn.LMNN(n_neighbors=3,
  regularization=0.5)`` on digits (stratified 70/30 split, standardised with the training statistics,
  PCA to 32 dimensions fitted on the training split); both k-NN (k=3) errors. Target: >= 20x faster at
  an equal or lower error.
- ``mmc``: fit time of ``mmc.yaml`` (100 iterations) against ``metric_learn.MMC_Supervised()`` on digits
  (standardised, no PCA), target >= 10x at an equal or lower error; and ``mmc_diag.yaml`` against
  ``MMC_Supervised(diagonal=True)``, no target.
- ``fewshot``: episodes/s of the project's few-shot protocol (``FewShotProtocol.evaluate`` with the
  ``protonet.yaml`` learner, whose backbone is a seeded, untrained Conv-4 with batch-norm statistics from
  one pass over training images, then frozen) against easyfsl's episode loop (``PrototypicalNetworks`` on
  the same backbone object: ``process_support_set`` then the forward pass on the queries) on the same
  5-way 1-shot 15-query episodes of the protocol's held-out classes. Target >= 10x; the two mean
  accuracies must be equal (the largest per-episode difference is printed). The protocol's time includes
  drawing its episodes and embedding the test images; easyfsl gets the episodes drawn beforehand.
- ``triplet``: training images/s of ``triplet.yaml`` (``TripletNetwork.fit``) against a plain
  pytorch-metric-learning loop (``DataLoader`` + ``MPerClassSampler``, ``TripletMarginLoss``,
  semi-hard ``TripletMarginMiner``, Adam, all from the same yaml) on the same initial network (its output
  L2-normalised, as the learner's embedding is), the same training split, batch size and number of
  steps. The sampler is seeded alike, so both sides see the same batches; their losses are compared.
  Target: ratio ours/plain >= 1.

Every row warms both sides up with a short untimed call, then times them alternately (``--repeats``
rounds, the side going first swapped each round) and reports the median, with ``time.perf_counter``.
Both sides get the same threads (``--threads``: torch and, through threadpoolctl, numpy's BLAS).
Output: a table on stdout, progress on stderr, and a CSV (``--out``) with one line per row: ``ours`` and
``peer_value`` (in ``unit``), ``speedup`` (how many times faster ours is: peer time / our time, or our
rate / peer rate), ``target`` and ``target_met`` (yes / no / n/a), the quality figure of each side, and
``agreement`` (the largest per-episode accuracy or per-step loss difference, where both sides should
agree). metric-learn and easyfsl are test-only dependencies (``pip install -e '.[test]'``); a row whose
peer is missing is skipped.

One round of the full run takes about 20 s with one thread, almost all of it metric-learn's LMNN and MMC
fits, so the default three rounds take about a minute; ``--dataset fashion_mnist`` adds minutes (easyfsl embeds
48,000 28x28 images per round). ``--quick`` takes seconds. On a machine shared with other jobs, pass
``--threads 1``: torch threads waiting for a busy core make every timing meaningless.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib.util
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from tabulate import tabulate
from threadpoolctl import threadpool_limits

from benchmarks.environment import pick_device
from benchmarks.run import prepare_split
from datasets.labeled import LabeledData
from methods.base import RunContext, embed_all

CONF = Path(__file__).resolve().parent.parent / "conf"
PARTS = ("lmnn", "mmc", "fewshot", "triplet")
PEERS = {"lmnn": "metric_learn", "mmc": "metric_learn", "fewshot": "easyfsl", "triplet": None}  # test-only
COLUMNS = ["row", "peer", "unit", "ours", "peer_value", "speedup", "target", "target_met",
           "quality", "ours_quality", "peer_quality", "agreement", "note"]
# The sizes, and tiny ones for --quick (which check the script and measure nothing).
SIZES = {
    "full": {"lmnn_iterations": 300, "mmc_iterations": 100, "episodes": 600, "triplet_steps": 300,
             "warmup": 5, "max_per_class": None},
    "quick": {"lmnn_iterations": 5, "mmc_iterations": 3, "episodes": 12, "triplet_steps": 6,
              "warmup": 2, "max_per_class": 60},
}


# ---------------------------------------------------------------------------------------------- helpers

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def clock(fn: Callable, device: torch.device):
    """(seconds, fn()) with the device synchronised before and after."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - start, out


def race(name: str, ours: Callable, peer: Callable, repeats: int, warmup: int):
    """Call ``ours(size)`` and ``peer(size)`` (each returns (seconds, result)): once untimed at size
    ``warmup``, then ``repeats`` times at full size (None), alternately, the side going first swapped every
    round. Returns the median seconds and the last result of each side."""
    ours(warmup), peer(warmup)
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    results = {}
    for r in range(repeats):
        order = [("ours", ours), ("peer", peer)]
        for side, fn in order if r % 2 == 0 else order[::-1]:
            seconds, results[side] = fn(None)
            times[side].append(seconds)
            log(f"  [{name}] round {r + 1}/{repeats} {side}: {seconds:.3f} s")
    return statistics.median(times["ours"]), results["ours"], statistics.median(times["peer"]), results["peer"]


def config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["progress=false", *overrides])


def row(name: str, peer: str, unit: str, ours: float, peer_value: float, speedup: float, target: float | None,
        quality: str, ours_quality: float, peer_quality: float, quality_ok: bool = True,
        agreement: float = math.nan, note: str = "") -> dict:
    """One CSV row. The target is met when the speed-up reaches it and the row's quality condition holds."""
    met = "n/a" if target is None else ("yes" if speedup >= target and quality_ok else "no")
    return {"row": name, "peer": peer, "unit": unit, "ours": ours, "peer_value": peer_value, "speedup": speedup,
            "target": math.nan if target is None else target, "target_met": met, "quality": quality,
            "ours_quality": ours_quality, "peer_quality": peer_quality, "agreement": agreement, "note": note}


# ---------------------------------------------------------------------------------------- LMNN and MMC

@contextlib.contextmanager
def metric_learn_on_this_sklearn():
    """metric-learn 0.7.0 passes ``force_all_finite``, which scikit-learn >= 1.8 rejects: rename it to
    ``ensure_all_finite`` in the two checks metric-learn imports (see PEERS.md), for this block only."""
    import metric_learn._util as ml_util

    def renamed(check):
        @functools.wraps(check)
        def wrapper(*args, **kwargs):
            if "force_all_finite" in kwargs:
                kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
            return check(*args, **kwargs)
        return wrapper

    saved = ml_util.check_array, ml_util.check_X_y
    ml_util.check_array, ml_util.check_X_y = map(renamed, saved)
    try:
        yield
    finally:
        ml_util.check_array, ml_util.check_X_y = saved


def standardised_split(load: Callable, seed: int, pca: int | None = None):
    """Stratified 70/30 split of a scikit-learn data set (``load``, e.g. ``load_digits``), standardised with
    the training statistics, optionally PCA-reduced (fitted on the training split). Shared with the
    metric-learn parity test."""
    x, y = load(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std == 0] = 1.0
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if pca is not None:
        reduce = PCA(pca, random_state=0).fit(x_tr)
        x_tr, x_te = reduce.transform(x_tr), reduce.transform(x_te)
    return x_tr, x_te, y_tr, y_te


def digits_split(seed: int, pca: int | None):
    return standardised_split(load_digits, seed, pca)


def knn_error(z_tr, y_tr, z_te, y_te) -> float:
    return 1.0 - KNeighborsClassifier(n_neighbors=3).fit(z_tr, y_tr).score(z_te, y_te)


def linear_metric_row(method: str, peer_name: str, make_peer: Callable, target: float | None, pca: int | None,
                      iterations: int, args, sizes) -> dict:
    """Fit time of ``conf/method/<method>.yaml`` against a metric-learn estimator, and both k-NN errors."""
    x_tr, x_te, y_tr, y_te = digits_split(args.seed, pca)
    train = LabeledData(x=torch.tensor(x_tr, dtype=torch.float32), y=torch.tensor(y_tr),
                        classes=[str(c) for c in range(int(y_tr.max()) + 1)])
    cfg = config(f"method={method}", f"budget.iterations={iterations}")
    ctx = RunContext(device=args.device, seed=args.seed, progress=False)

    def ours(size):
        learner = instantiate(cfg.method.learner, **({} if size is None else {"iterations": size}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # stopping at the iteration limit
            seconds, _ = clock(lambda: learner.fit(train, ctx), args.device)
        return seconds, learner

    def peer(size):
        model = make_peer(max_iter=iterations if size is None else size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings
            return clock(lambda: model.fit(x_tr, y_tr), torch.device("cpu"))

    t_ours, learner, t_peer, model = race(method, ours, peer, args.repeats, sizes["warmup"])
    with torch.no_grad():
        z_tr, z_te = (embed_all(learner, torch.tensor(v, dtype=torch.float32)).numpy() for v in (x_tr, x_te))
    ours_error = knn_error(z_tr, y_tr, z_te, y_te)
    peer_error = knn_error(model.transform(x_tr), y_tr, model.transform(x_te), y_te)
    return row(method, peer_name, "fit s", t_ours, t_peer, t_peer / t_ours, target, "knn_error",
               ours_error, peer_error, quality_ok=ours_error <= peer_error,
               note=f"digits{f' PCA {pca}' if pca else ''}, {iterations} iterations (max_iter), "
                    f"Euclidean error {knn_error(x_tr, y_tr, x_te, y_te):.4f}")


def lmnn_rows(args, sizes) -> list[dict]:
    import metric_learn

    make = functools.partial(metric_learn.LMNN, n_neighbors=3, regularization=0.5, random_state=args.seed)
    with metric_learn_on_this_sklearn():
        return [linear_metric_row("lmnn", "metric_learn.LMNN", make, 20.0, 32, sizes["lmnn_iterations"],
                                  args, sizes)]


def mmc_rows(args, sizes) -> list[dict]:
    import metric_learn

    full = functools.partial(metric_learn.MMC_Supervised, random_state=args.seed)
    diag = functools.partial(metric_learn.MMC_Supervised, diagonal=True, random_state=args.seed)
    iterations = sizes["mmc_iterations"]
    with metric_learn_on_this_sklearn():
        return [linear_metric_row("mmc", "metric_learn.MMC_Supervised", full, 10.0, None, iterations, args, sizes),
                linear_metric_row("mmc_diag", "MMC_Supervised(diagonal=True)", diag, None, None, iterations,
                                  args, sizes)]


# ------------------------------------------------------------------------------------------- few-shot

def image_split(args, sizes, method: str, protocol: str, *overrides: str):
    """(cfg, split) for ``method`` under ``protocol`` on ``--dataset``, as the runner builds them; digits
    become 1x8x8 images when the backbone is Conv-4 (with depth 3, the deepest 8x8 allows)."""
    extra = [f"dataset.source.max_per_class={sizes['max_per_class']}"] if (
        args.dataset == "fashion_mnist" and sizes["max_per_class"]) else []
    cfg = config(f"dataset={args.dataset}", f"method={method}", f"protocol={protocol}",
                 f"data_seed={args.seed}", f"seed={args.seed}", *extra, *overrides)
    split = prepare_split(cfg, instantiate(cfg.protocol.evaluator))
    if cfg.backbone.get("_target_", "").endswith("Conv4") and split.train.x.dim() == 2:
        side = math.isqrt(split.train.x.shape[1])
        split = dataclasses.replace(split, train=split.train.with_inputs(split.train.x.view(-1, 1, side, side)),
                                    test=split.test.with_inputs(split.test.x.view(-1, 1, side, side)))
        cfg.backbone.depth = 3
    cfg.backbone.input_shape = list(split.train.input_shape)
    return cfg, split


@torch.no_grad()
def calibrate_batchnorm(net: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Batch-norm running statistics from one pass over ``x`` (else a random Conv-4's features are tiny)."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average: one pass sets the statistics to the batch's
    net.train()(x)
    return net.eval()


def fewshot_rows(args, sizes) -> list[dict]:
    from easyfsl.methods import PrototypicalNetworks

    n_episodes = sizes["episodes"]
    cfg, split = image_split(args, sizes, "protonet", "fewshot", "backbone=conv4", "budget.iterations=0",
                             f"budget.episodes={n_episodes}", "protocol.evaluator.shots=[1]")
    protocol = instantiate(cfg.protocol.evaluator)
    torch.manual_seed(args.seed)
    learner = instantiate(cfg.method.learner).to(args.device)
    calibrate_batchnorm(learner.encoder, split.train.x[:1024].to(args.device))
    learner.eval()  # embed_all puts back the mode it found: keep the shared backbone in eval mode
    peer_model = PrototypicalNetworks(learner.encoder).eval()
    ctx = RunContext(device=args.device, seed=args.seed, progress=False)
    eps = protocol.episodes(split, 1, args.seed)  # the protocol's own episodes, drawn the same way inside
    n_way, n_query = protocol.n_way, protocol.n_query
    support_y = torch.arange(n_way)  # one shot
    query_y = torch.arange(n_way).repeat_interleave(n_query)
    x_test = split.test.x

    def ours(size):
        proto = protocol if size is None else dataclasses.replace(protocol, n_episodes=size)
        return clock(lambda: proto.evaluate(learner, split, ctx, data_seed=args.seed), args.device)

    @torch.no_grad()
    def peer_loop(n):
        correct = torch.empty(n)
        for e in range(n):
            peer_model.process_support_set(x_test[eps.support[e].flatten()].to(args.device),
                                           support_y.to(args.device))
            scores = peer_model(x_test[eps.query[e].flatten()].to(args.device))
            correct[e] = (scores.argmax(1).cpu() == query_y).float().mean()
        return correct

    def peer(size):
        return clock(lambda: peer_loop(n_episodes if size is None else size), args.device)

    t_ours, result, t_peer, peer_correct = race("fewshot", ours, peer, args.repeats, sizes["warmup"])
    # per-episode accuracies of our side (the protocol reports only their mean): the protocol's own calls
    emb = embed_all(learner, x_test)
    with torch.no_grad():
        ours_correct = torch.stack([(learner.adapt(emb[eps.support[e].flatten()], support_y)
                                     .score(emb[eps.query[e].flatten()]).argmax(1) == query_y).float().mean()
                                    for e in range(eps.n_episodes)])
    reported, peer_mean = result.metrics["acc_5w1s"].mean, float(peer_correct.double().mean())
    agreement = float((ours_correct - peer_correct).abs().max())
    used = int(torch.unique(torch.cat([eps.support.flatten(), eps.query.flatten()])).numel())
    note = (f"{args.dataset}, {n_episodes} episodes 5-way 1-shot {n_query}-query, frozen random Conv-4 "
            f"(depth {cfg.backbone.depth}); ours embeds {used} test images once, easyfsl "
            f"{n_episodes * n_way * (1 + n_query)}; agreement = max |per-episode accuracy difference|")
    if abs(reported - float(ours_correct.double().mean())) > 1e-9:
        note += f"; the protocol reported {reported:.6f}, its per-episode recomputation differs"
    return [row("fewshot", "easyfsl PrototypicalNetworks", "episodes/s", n_episodes / t_ours, n_episodes / t_peer,
                t_peer / t_ours, 10.0, "acc_5w1s", reported, peer_mean,
                quality_ok=agreement == 0.0, agreement=agreement, note=note)]


# -------------------------------------------------------------------------------------------- triplet

def plain_pml_loop(net, x, y, loss_fn, miner, optimizer, m: int, batch_size: int, steps: int, seed: int,
                   device: torch.device) -> list[float]:
    """A textbook pytorch-metric-learning training loop; returns the loss of every step."""
    from pytorch_metric_learning.samplers import MPerClassSampler
    from torch.utils.data import DataLoader, TensorDataset

    sampler = MPerClassSampler(y, m=m, batch_size=batch_size, length_before_new_iter=batch_size * steps)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, sampler=sampler)
    opt = optimizer(net.parameters())
    net.to(device).train()
    losses = []
    saved = np.random.get_state()
    np.random.seed(seed)  # the sampler draws from numpy's global generator (as the project seeds it)
    try:
        for data, labels in loader:
            data, labels = data.to(device), labels.to(device)
            opt.zero_grad()
            embeddings = F.normalize(net(data), dim=1)  # the learner's embedding is L2-normalised
            loss = loss_fn(embeddings, labels, miner(embeddings, labels))
            loss.backward()
            opt.step()
            losses.append(loss.detach())  # no host sync inside the loop
    finally:
        np.random.set_state(saved)
    return [float(v) for v in losses]


def triplet_rows(args, sizes) -> list[dict]:
    steps = sizes["triplet_steps"]
    backbone = "conv4" if args.dataset == "fashion_mnist" else "mlp"
    cfg, split = image_split(args, sizes, "triplet", "retrieval", f"backbone={backbone}",
                             f"budget.iterations={steps}")
    ctx = RunContext(device=args.device, seed=args.seed, progress=False)
    spec = cfg.method.learner
    batch = spec.m_per_class * min(spec.classes_per_batch, int(split.train.present_classes.numel()))

    def fresh(size):
        torch.manual_seed(args.seed)  # the same initial network on both sides
        return instantiate(spec, iterations=steps if size is None else size)

    def ours(size):
        learner = fresh(size)
        seconds, report = clock(lambda: learner.fit(split.train, ctx), args.device)
        return seconds, report.loss_curve

    def peer(size):
        net = fresh(size).encoder
        return clock(lambda: plain_pml_loop(net, split.train.x, split.train.y, instantiate(spec.loss),
                                            instantiate(spec.miner), instantiate(spec.optimizer),
                                            spec.m_per_class, batch, steps if size is None else size, args.seed,
                                            args.device), args.device)

    t_ours, ours_curve, t_peer, peer_losses = race("triplet", ours, peer, args.repeats, sizes["warmup"])
    # the loss at the steps our loss curve keeps (every iterations // 100), on both sides
    ours_loss = np.array([value for _, value in ours_curve])
    peer_loss = np.array([peer_losses[step] for step, _ in ours_curve])
    images = steps * batch
    return [row("triplet", "plain pytorch-metric-learning loop", "images/s", images / t_ours, images / t_peer,
                t_peer / t_ours, 1.0, "mean_loss", float(ours_loss.mean()), float(peer_loss.mean()),
                agreement=float(np.abs(ours_loss - peer_loss).max()),
                note=f"{args.dataset} retrieval training split, {backbone}, batch {batch}, {steps} steps; "
                     "mean_loss over the steps our loss curve keeps, agreement = max |loss difference| at "
                     "those steps (same batches, same initial weights)")]


# ----------------------------------------------------------------------------------------------- main

ROWS = {"lmnn": lmnn_rows, "mmc": mmc_rows, "fewshot": fewshot_rows, "triplet": triplet_rows}


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated rows to run, of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing")
    parser.add_argument("--dataset", choices=["digits", "fashion_mnist"], default="digits",
                        help="data of the fewshot and triplet rows (LMNN and MMC always use digits)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per side (median reported)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser.add_argument("--threads", type=int, default=cores,
                        help="torch and BLAS threads for both sides (default: all available cores)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto, for this project's side and the "
                        "torch peers (metric-learn is numpy: always CPU)")
    parser.add_argument("--seed", type=int, default=0, help="split, episode and initialisation seed")
    parser.add_argument("--out", type=Path, default=Path("results/speed/speed.csv"), help="CSV written here")
    args = parser.parse_args(argv)
    args.only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(args.only) - set(PARTS))
    if unknown or not args.only:
        parser.error(f"--only: unknown row(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(PARTS)}")
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    args.device = pick_device(args.device)
    return args


def show(frame: pd.DataFrame) -> str:
    table = [[r.row, r.peer, r.unit, f"{r.ours:.4g}", f"{r.peer_value:.4g}", f"{r.speedup:.1f}x",
              "-" if math.isnan(r.target) else f">= {r.target:g}x", r.target_met, r.quality,
              f"{r.ours_quality:.4f}", f"{r.peer_quality:.4f}",
              "" if math.isnan(r.agreement) else f"{r.agreement:.3g}"]
             for r in frame.itertuples()]
    return tabulate(table, headers=["row", "peer", "unit", "ours", "peer", "speed-up", "target", "met",
                                    "quality", "ours", "peer", "agreement"], disable_numparse=True)


def main(argv=None) -> pd.DataFrame:
    args = parse(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    skipped = [p for p in args.only if PEERS[p] and importlib.util.find_spec(PEERS[p]) is None]
    try:
        with threadpool_limits(limits=args.threads):
            for part in args.only:
                log(f"[{part}] ..." if part not in skipped else f"[{part}] skipped: {PEERS[part]} is missing")
                if part not in skipped:
                    rows += ROWS[part](args, sizes)
    finally:
        torch.set_num_threads(threads)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    print(f"speed on {args.device} with {args.threads} thread(s), {args.repeats} timed round(s) per side"
          + (" — QUICK sizes: the numbers check the script and measure nothing" if args.quick else ""))
    print(show(frame))
    for r in frame.itertuples():
        print(f"- {r.row}: {r.note}")
    for part in skipped:
        print(f"- {part}: skipped, its peer {PEERS[part]} is not installed (pip install -e '.[test]')")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {args.out}")
    return frame


if __name__ == "__main__":
    main()
