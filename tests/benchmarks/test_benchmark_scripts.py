"""The paper-reproduction benchmarks: each script's quick path on digits with tiny settings,
and the content of what it writes (Markdown tables, CSV rows, PNG figures)."""
import csv
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

torch.set_num_threads(1)

TINY = ["--dataset", "digits", "--quick", "--seeds", "0", "--n-train", "400", "--n-test", "100", "--epochs", "1",
        "--teacher-epochs", "1", "--hidden", "32", "--head-hidden", "32", "--batch-size", "50", "--s", "5",
        "--bank-size", "30", "--obo-limit", "20", "--lr-grid", "0.05", "--quiet"]


def run(module: str, tmp: Path, *extra: str) -> Path:
    mod = __import__(module)
    out = tmp / module
    assert mod.main([*TINY, "--out", str(out), "--teacher-cache", str(tmp / "teachers"), *extra]) == 0
    return out


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def table_rows(md: str, first_header: str) -> list[list[str]]:
    """Body rows of the Markdown table whose first header cell is ``first_header``."""
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"| {first_header} |"):
            rows = []
            for body in lines[i + 2:]:
                if not body.startswith("|"):
                    break
                rows.append([c.strip() for c in body.strip("|").split("|")])
            return rows
    raise AssertionError(f"no table starting with {first_header!r} in:\n{md}")


def pct(cell: str) -> float:
    """The mean of a 'm ± s' or plain percentage cell."""
    return float(cell.split("±")[0])


def check_png(path: Path, *words: str, min_size=(200, 120)) -> None:
    from PIL import Image
    assert path.stat().st_size > 5_000
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1]
        desc = im.info.get("Description", "")
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20, "figure looks blank"
    for w in words:
        assert w in desc, f"{w!r} not in the figure description {desc!r}"


def check_targets(out: Path, script: str, expected: set) -> None:
    rows = read_csv(out / f"{script}_targets.csv")
    assert {r["target"] for r in rows} == expected
    for r in rows:
        assert r["status"] in ("PASS", "MISS")
        assert r["margin"]
        v = float(r["value"])
        thr = {"epoch_cnn2gnn_over_kdmlp": 1.5}.get(r["target"])
        if r["target"].startswith("student_minus"):
            assert (r["status"] == "PASS") == (v >= 0 if r["target"] == "student_minus_teacher" else v > 0)
        elif thr is not None:
            assert (r["status"] == "PASS") == (v <= thr)
        else:
            assert v > 0
    md = (out / f"{script}.md").read_text()
    assert "### Issue-6 targets" in md and "Command: `python benchmarks/" in md and "Hardware:" in md


CORE = {"mech2_vs_mech1_speed", "flops_teacher_over_student", "latency_teacher_over_student",
        "epoch_cnn2gnn_over_kdmlp"}


def test_tables12(tmp_path):
    out = run("tables12", tmp_path, "--seeds", "0", "1")
    rows = read_csv(out / "tables12.csv")
    assert len(rows) == 2 * 8      # per seed: teacher, 3 MLPs, GNN x2 mechanisms, CNN2GNN x2
    for r in rows:
        assert 0.0 <= float(r["test_last"]) <= 1.0 and 0.0 <= float(r["test_best_val"]) <= 1.0
    md = (out / "tables12.md").read_text()
    body = table_rows(md, "method")
    assert [(r[0], r[1]) for r in body] == [
        ("Teacher", "-"), ("MLP (CE only)", "- (per sample)"), ("KD-MLP (Hinton)", "- (per sample)"),
        ("DKD-MLP", "- (per sample)"), ("GNN (learned head, no teacher)", "bank"),
        ("GNN (learned head, no teacher)", "batch"), ("CNN2GNN", "bank"), ("CNN2GNN", "batch")]
    for r in body:
        assert "±" in r[2]            # two seeds: mean ± std
        assert 0.0 <= pct(r[2]) <= 100.0 and 0.0 <= pct(r[3]) <= 100.0
    check_png(out / "tables12.png", "Teacher", "KD-MLP", "DKD-MLP", "CNN2GNN [batch]")
    check_targets(out, "tables12", CORE | {"student_minus_teacher", "student_minus_kdmlp", "student_minus_gnn"})


def test_table3_ablation(tmp_path):
    out = run("table3_ablation", tmp_path, "--lr-grid", "0.01", "0.05")
    rows = read_csv(out / "table3_ablation.csv")
    assert {r["lr"] for r in rows} <= {"0.01", "0.05"}
    assert [(r["method"], r["mechanism"]) for r in rows] == [
        ("InGNN", "batch"), ("InGNN", "bank"), ("EucGNN", "batch"), ("EucGNN", "bank"),
        ("CNN2GNN", "one_by_one"), ("CNN2GNN", "batch"), ("CNN2GNN", "bank")]
    for r in rows:
        assert 0.0 <= float(r["test_acc"]) <= 1.0 and float(r["ms_per_sample"]) > 0
        assert int(r["n_test"]) == (20 if r["mechanism"] == "one_by_one" else 100)
    md = (out / "table3_ablation.md").read_text()
    body = table_rows(md, "method")
    assert [r[1] for r in body if r[0] == "CNN2GNN"] == ["One-by-One (Mechanism 1)", "Batch-by-Batch (Mechanism 2)",
                                                         "bank (ours)"]
    assert all(0.0 <= pct(r[2]) <= 100.0 for r in body)
    assert all(r[-1] in ("0.01", "0.05") for r in body)            # the validation-selected learning rate
    check_png(out / "table3_ablation.png", "InGNN [batch]", "EucGNN [bank]", "CNN2GNN [one_by_one]")
    check_targets(out, "table3_ablation", CORE | {"student_minus_ingnn", "student_minus_eucgnn"})


def test_sensitivity(tmp_path):
    out = run("sensitivity", tmp_path, "--seeds", "0", "1", "--s-values", "2", "5", "--tau-values", "1", "4",
              "--batch-values", "25", "50")
    rows = read_csv(out / "sensitivity.csv")
    assert len(rows) == 2 * (2 + 2 + 2)
    assert {r["param"] for r in rows} == {"s", "tau", "batch"}
    for r in rows:
        assert 0.0 <= float(r["test_acc_bank"]) <= 1.0 and 0.0 <= float(r["test_acc_batch"]) <= 1.0
    # the default point (s=5, tau=4, batch=50) is trained once per seed and shared by the sweeps
    d = [r for r in rows if r["s"] == "5" and float(r["tau"]) == 4.0 and r["batch_size"] == "50" and r["seed"] == "0"]
    assert len(d) == 3 and len({r["test_acc_bank"] for r in d}) == 1
    md = (out / "sensitivity.md").read_text()
    for param, values in (("s", ["2", "5"]), ("tau", ["1", "4"]), ("batch", ["25", "50"])):
        body = table_rows(md, param)
        assert [r[0] for r in body] == values
        assert all(0.0 <= pct(c) <= 100.0 for r in body for c in r[1:4])
    check_png(out / "sensitivity.png", "error bars", "s, tau, batch size", "Mechanism 2", min_size=(500, 150))
    check_targets(out, "sensitivity", CORE)


def test_flops_accuracy(tmp_path):
    out = run("flops_accuracy", tmp_path, "--widths", "16", "32", "--gnn-widths", "32", "--n-measure", "60")
    rows = read_csv(out / "flops_accuracy.csv")
    # teacher; width 16: MLP, KD-MLP; width 32 (= hidden): MLP, KD-MLP, DKD-MLP; CNN2GNN and GNN x 2 mechanisms
    assert len(rows) == 1 + 2 + 3 + 4
    fl = {(r["model"], r["mechanism"]): float(r["flops_per_sample"]) for r in rows}
    for r in rows:
        assert 0.0 <= float(r["test_acc"]) <= 1.0 and float(r["ms_per_sample_batched"]) > 0
    teacher = fl[("Teacher (simple-cnn)", "teacher")]
    # an MLP 64-32-10 costs 2 * (64 * 32 + 32 * 10) FLOPs
    assert fl[("KD-MLP (hidden 32)", "direct")] == pytest.approx(2 * (64 * 32 + 32 * 10))
    assert fl[("MLP (hidden 16)", "direct")] == pytest.approx(2 * (64 * 16 + 16 * 10))
    assert teacher > fl[("KD-MLP (hidden 32)", "direct")]
    assert fl[("CNN2GNN (hidden 32)", "batch")] > fl[("KD-MLP (hidden 32)", "direct")]
    md = (out / "flops_accuracy.md").read_text()
    body = table_rows(md, "model")
    assert len(body) == len(rows) and all(0.0 <= float(r[2]) <= 100.0 for r in body)
    assert [r[5] for r in body if r[1] == "Mechanism 2"] and all(r[6] == "–" for r in body if r[1] == "Mechanism 2")
    check_png(out / "flops_accuracy.png", "CNN2GNN", "KD-MLP", "DKD-MLP", "teacher", min_size=(500, 150))
    check_targets(out, "flops_accuracy", CORE)


def test_neighbours(tmp_path):
    out = run("neighbours", tmp_path, "--n-queries", "3", "--show", "4", "--n-measure", "50")
    stats = read_csv(out / "neighbours_stats.csv")
    assert [r["graph"] for r in stats] == ["learned head (trained)", "learned head (untrained, random init)",
                                          "pixel Euclidean (EucGNN graph)"]
    for r in stats:
        assert 0.0 <= float(r["same_class_fraction"]) <= 1.0 and 0.0 <= float(r["same_class_weight_mass"]) <= 1.0
    assert float(stats[2]["same_class_fraction"]) > 0.5          # pixel kNN on digits is mostly right
    q = read_csv(out / "neighbours_queries.csv")
    assert len(q) == 3 * 5                                       # 3 queries x s = 5 neighbours
    for t in {r["query_test_index"] for r in q}:
        w = [float(r["weight"]) for r in q if r["query_test_index"] == t]
        assert sum(w) == pytest.approx(1.0, abs=1e-5) and w == sorted(w, reverse=True)
        assert all((r["class_match"] == "True") == (r["query_class"] == r["neighbour_class"])
                   for r in q if r["query_test_index"] == t)
    assert len({r["query_class"] for r in q}) == 3
    check_png(out / "neighbours.png", "3 queries x 4 neighbours", min_size=(250, 150))
    import numpy as np
    from PIL import Image
    with Image.open(out / "neighbours.png") as im:
        px = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    green = int(((g > 100) & (r < 60) & (b < 60)).sum())
    red = int(((r > 180) & (g < 60) & (b < 60)).sum())
    assert green + red > 100                                     # the class-match frames are drawn
    md = (out / "neighbours.md").read_text()
    assert len(table_rows(md, "graph")) == 3 and len(table_rows(md, "query (test index)")) == 3
    check_targets(out, "neighbours", CORE)


def test_mechanism2_sensitivity(tmp_path):
    out = run("mechanism2_sensitivity", tmp_path, "--batch-values", "10", "50", "--shuffles", "2")
    rows = read_csv(out / "mechanism2_sensitivity.csv")
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        assert 0.0 <= float(r["changed_vs_reference"]) <= 1.0 and 0.0 <= float(r["accuracy"]) <= 1.0
    bank = [r for r in rows if r["mechanism"] == "bank"]
    assert all(float(r["changed_vs_reference"]) == 0.0 for r in bank)   # bank is batch-independent
    assert len({r["accuracy"] for r in bank}) == 1
    md = (out / "mechanism2_sensitivity.md").read_text()
    body = table_rows(md, "mechanism")
    assert [(r[0], r[1]) for r in body] == [("Mechanism 2", "10"), ("Mechanism 2", "50"), ("bank (control)", "10"),
                                            ("bank (control)", "50")]
    assert all(0.0 <= pct(c) <= 100.0 for r in body for c in r[2:])
    check_png(out / "mechanism2_sensitivity.png", "Mechanism 2", "bank")
    check_targets(out, "mechanism2_sensitivity", CORE)


def test_presets_and_options():
    import _bench as B
    p = B.parser("x")
    a = B.finish_args(p.parse_args(["--full", "--dataset", "fashion_mnist"]), "demo", argv=[])
    assert (a.epochs, a.batch_size, a.s, a.alpha, a.lr, a.head_hidden) == (200, 100, 50, 1.0, 0.01, [512, 256])
    assert a.dataset == "fashion-mnist" and a.n_train == 0 and len(a.seeds) >= 3
    q = B.finish_args(p.parse_args(["--dataset", "digits", "--epochs", "3"]), "demo", {"quick": {"seeds": [4, 5]}},
                      argv=[])
    assert q.mode == "quick" and q.epochs == 3 and q.seeds == [4, 5] and q.out.endswith("digits/demo")
    rows = B.target_rows({"mech2_vs_mech1_speed": 12.0, "epoch_cnn2gnn_over_kdmlp": 3.0,
                          "student_minus_teacher": 0.0, "student_minus_kdmlp": 0.0})
    assert [r["status"] for r in rows] == ["PASS", "MISS", "PASS", "MISS"]
    assert rows[0]["margin"] == "1.20x of the target" and rows[1]["margin"] == "0.50x of the cap"
    assert re.match(r"\d+\.\d+ ± \d+\.\d+", B.mean_std([0.5, 0.7]))
