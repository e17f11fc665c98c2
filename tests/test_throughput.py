"""benchmarks.throughput: the speed table a GPU or CPU session reports, computed from records."""
from pathlib import Path

import pytest

from benchmarks import throughput
from benchmarks.records import SCHEMA_VERSION, write_json_atomic


def _record(root: Path, method: str, seed: int, fit_s: float, steps: int | None, eval_s: float, n_test: int | None,
            loaded: bool = False, precision: str | None = None, start: str = "00:00:00", end: str = "00:00:10",
            protocol: str = "fewshot", status: str = "ok"):
    tp = {"eval_test_samples_per_s": n_test / eval_s} if n_test is not None else {}
    if steps is not None:
        tp["fit_steps_per_s"] = steps / fit_s
    config = {"method": {"name": method}} | ({"precision": precision} if precision else {})
    write_json_atomic(root / protocol / method / f"seed{seed}{precision or ''}" / "record.json", {
        "schema_version": SCHEMA_VERSION, "status": status, "dataset": "digits", "protocol": protocol, "method": method, "seed": seed, "config": config,
        "device": "cuda:Test GPU", "timings": {"fit_s": fit_s, "eval_s": eval_s, "total_s": fit_s + eval_s},
        "throughput": tp, "fit_cache": {"loaded": loaded},
        "started": f"2026-12-06T{start}+00:00", "finished": f"2026-12-06T{end}+00:00"})


def test_medians_per_method_and_precision_and_the_study_span(tmp_path):
    runs = tmp_path / "runs" / "gpu"
    _record(runs, "protonet", 0, fit_s=10.0, steps=300, eval_s=2.0, n_test=1000)   # 30 steps/s, 500 img/s
    _record(runs, "protonet", 1, fit_s=5.0, steps=300, eval_s=1.0, n_test=1000)    # 60 steps/s, 1000 img/s
    _record(runs, "protonet", 2, fit_s=6.0, steps=300, eval_s=4.0, n_test=1000)    # 50 steps/s, 250 img/s
    # a run that loaded seed 0's fit repeats its fit_s (30 steps/s): counted, it would move the median to 40
    _record(runs, "protonet", 3, fit_s=10.0, steps=300, eval_s=1.0, n_test=1000, loaded=True)
    _record(runs, "protonet", 0, fit_s=1.0, steps=300, eval_s=1.0, n_test=10, protocol="knn")  # another protocol
    _record(runs, "protonet", 0, fit_s=3.0, steps=300, eval_s=1.0, n_test=1000, precision="bf16",
            start="00:00:05", end="00:01:40")
    _record(runs, "raw", 0, fit_s=0.0, steps=None, eval_s=0.5, n_test=1000)
    rows = {(r["method"], r["precision"]): r for r in throughput.study_rows(
        [r for r in throughput.load_records(runs)[0]], "gpu") if r["protocol"] == "fewshot"}
    fp32 = rows[("protonet", "fp32")]
    assert fp32["runs"] == 4 and fp32["fit_steps_per_s"] == pytest.approx(50.0)  # the cached fit is left out
    assert fp32["eval_images_per_s"] == pytest.approx((500 + 1000) / 2)  # median of 250, 500, 1000, 1000
    assert fp32["run_s"] == pytest.approx(12.0 + 6.0 + 10.0 + 11.0, abs=0.1)
    assert rows[("protonet", "bf16")]["fit_steps_per_s"] == pytest.approx(100.0)
    assert rows[("raw", "fp32")]["fit_steps_per_s"] is None and rows[("raw", "fp32")]["device"] == "cuda:Test GPU"
    text = throughput.build(["gpu"], tmp_path)
    raw_row = next(line for line in text.splitlines() if line.startswith("| gpu") and "| raw " in line)
    assert "—" in raw_row  # no training steps to count
    assert "- gpu: 7 runs" in text and "span 100 s" in text
    knn_row = next(line for line in text.splitlines() if "| knn " in line)
    cells = [c.strip() for c in knn_row.split("|")]
    assert cells[-3:-1] == ["300", "10"]  # its own rates (steps/s, images/s), not pooled with the few-shot runs


def test_a_protocol_that_scores_data_outside_the_split_shows_no_image_rate(tmp_path):
    runs = tmp_path / "runs" / "omni"
    _record(runs, "protonet", 0, fit_s=1.0, steps=300, eval_s=2.0, n_test=None, protocol="omniglot_oneshot")
    _record(runs, "protonet", 1, fit_s=1.0, steps=300, eval_s=2.0, n_test=0, protocol="omniglot_oneshot")  # older record: 0
    _record(runs, "protonet", 0, fit_s=1.0, steps=300, eval_s=2.0, n_test=100, protocol="fewshot")
    rows = {r["protocol"]: r for r in throughput.study_rows(throughput.load_records(runs)[0], "omni")}
    assert rows["omniglot_oneshot"]["eval_images_per_s"] is None and rows["omniglot_oneshot"]["runs"] == 2
    assert rows["fewshot"]["eval_images_per_s"] == pytest.approx(50.0)
    oneshot = next(line for line in throughput.build(["omni"], tmp_path).splitlines() if "| omniglot_oneshot " in line)
    assert [c.strip() for c in oneshot.split("|")][-2] == "—"


def test_a_study_without_records_is_named(tmp_path, capsys):
    assert throughput.main(["nothing_here", "--results", str(tmp_path)]) == 2
    assert "no records of study nothing_here" in capsys.readouterr().err


def test_a_study_with_no_ok_record_is_named_and_left_out(tmp_path, capsys):
    _record(tmp_path / "runs" / "done", "raw", 0, fit_s=0.0, steps=None, eval_s=0.5, n_test=1000)
    _record(tmp_path / "runs" / "stopped", "raw", 0, fit_s=0.0, steps=None, eval_s=0.5, n_test=1000, status="failed")
    (tmp_path / "runs" / "stopped" / "broken").mkdir()
    (tmp_path / "runs" / "stopped" / "broken" / "record.json").write_text("{not json")
    assert throughput.main(["done", "stopped", "--results", str(tmp_path), "--out", str(tmp_path / "t.md")]) == 0
    err = capsys.readouterr().err
    assert "study stopped has no ok records" in err and "cannot read" in err and "broken" in err
    written = (tmp_path / "t.md").read_text()
    assert "- done: 1 runs" in written and "stopped" not in written
    assert throughput.main(["stopped", "--results", str(tmp_path)]) == 2
