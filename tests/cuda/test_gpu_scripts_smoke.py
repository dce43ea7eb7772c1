"""The GPU scripts (benchmarks/gpu) on the CPU, on their ``--smoke`` setting (digits, tiny
models), so that they are known to run before device time is spent. No accuracy is
asserted (a 1-epoch teacher on digits is near chance); the outputs' structure, the
budget-driven epoch choice, the teacher hand-over between parts and the configs are."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gpu_api as api
import pytest
import torch
from report import protocol_table

from tg_cnn2gnn.run.configfile import read_mapping, settings_from_file

ROOT = Path(__file__).resolve().parents[2]
GPU = ROOT / "benchmarks" / "gpu"


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    r = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_throughput_smoke(tmp_path):
    _run([str(GPU / "throughput.py"), "--smoke", "--threads", "1", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "throughput.json").read_text())
    assert [r["path"] for r in res["distill"]] == ["step loop, tensors on device", "Trainer.fit"]
    assert all(r["samples_per_s"] > 0 for r in res["distill"])
    g = res["graph"]
    assert g["n"] == 4000 and g["s"] == 10 and g["package"]["seconds"] > 0 and g["bare"]["seconds"] > 0
    # the package's graph holds every neighbour the bare loop finds (random points: no ties)
    assert g["agreement"] == 1.0
    assert 4000 * 10 <= g["edges"] <= 2 * 4000 * 10
    assert res["syncs"] == []          # none can be seen on the CPU
    assert "| sparse simplex graph (package) |" in (tmp_path / "throughput.md").read_text()


def test_protocol_smoke_and_part3_reuses_part2_teacher(tmp_path):
    out2, out3, tdir = tmp_path / "p23", tmp_path / "p3", tmp_path / "teacher"
    common = ["--smoke", "--threads", "1", "--teacher-dir", str(tdir)]
    _run([str(GPU / "protocol.py"), "--parts", "2", "3", "--seeds", "--budget-s", "90", "--out", str(out2), *common])
    res = json.loads((out2 / "protocol.json").read_text())
    assert res["smoke"] and res["teacher"]["source"] == "trained" and res["teacher"]["epochs"] >= 1
    assert [(r["config"], r["seed"]) for r in res["runs"]] == [("paper", 0), ("kd-mlp", 0), ("recommended", 0)]
    paper, mlp, rec = res["runs"]
    assert mlp["epochs"] == paper["epochs"] and mlp["settings"]["student"] == "mlp"   # same widths and budget
    assert mlp["settings"]["hidden"] == paper["settings"]["hidden"] and mlp["consistency"] is None
    assert paper["label_vote"] is None and rec["label_vote"]["beta"] == rec["settings"]["label_vote"] > 0
    assert 0.0 <= rec["label_vote"]["test_acc"] <= 1.0
    for run in (paper, rec):
        gc = run["consistency"]
        assert gc["s"] == run["settings"]["s"] and 0.0 <= gc["learned"] <= 1.0 and 0.0 <= gc["raw"] <= 1.0
    for run in res["runs"]:
        assert 1 <= run["epochs"] <= run["epochs_configured"]
        for which in ("last", "best_val"):
            assert set(run["test"][which]) == {"bank", "batch"}
            assert all(0.0 <= a <= 1.0 for a in run["test"][which].values())
    for run in (paper, rec):
        costs = run["costs"]
        assert costs["teacher"]["flops_per_sample"] > costs["student"]["flops"]["bank"]["per_sample"] > 0
        assert costs["latency_ms"]["bank"]["batch1"] > 0 and costs["latency_ms"]["batch"]["batched"] > 0
        assert costs["latency_ms"]["predictor"]["batch1"] > 0
    shards = sorted(out2.glob("teacher_shard*.pt"))
    assert shards and all(p.stat().st_size < 16 * 2 ** 20 for p in shards)   # the device tool's file limit
    assert "| paper | 0 |" in (out2 / "protocol.md").read_text()

    _run([str(GPU / "protocol.py"), "--parts", "3", "--seeds", "--budget-s", "60", "--out", str(out3), *common])
    res3 = json.loads((out3 / "protocol.json").read_text())
    assert res3["teacher"]["source"].startswith("shards")
    assert abs(res3["teacher"]["test_acc"] - res["teacher"]["test_acc"]) <= 0.02   # fp16 weights
    assert [r["config"] for r in res3["runs"]] == ["recommended"]

    # the KD-MLP baseline alone, for the epochs a paper run had (its call had no time left for it)
    outk = tmp_path / "kd"
    _run([str(GPU / "protocol.py"), "--parts", "2", "--reuse-teacher", "--kd-mlp-only", "3", "--budget-s", "60",
          "--out", str(outk), *common])
    resk = json.loads((outk / "protocol.json").read_text())
    assert resk["teacher"]["source"].startswith("shards")
    assert [(r["config"], r["epochs"], r["settings"]["student"]) for r in resk["runs"]] == [("kd-mlp", 3, "mlp")]


def test_teacher_shards_round_trip_and_refuse_other_settings(tmp_path):
    s = api.settings({"dataset": "digits", "teacher": "simple-cnn", "teacher_width": 8})
    data = api.load(s)
    teacher = api.build_teacher(s, data)
    api.save_teacher_shards(teacher, tmp_path, api.teacher_meta(s), shard_bytes=2000)
    assert len(list(tmp_path.glob("teacher_shard*.pt"))) > 1
    other = api.build_teacher(s.replace(seed=5), data)
    api.load_teacher_shards(other, tmp_path, api.teacher_meta(s))
    for (k, a), b in zip(teacher.state_dict().items(), other.state_dict().values()):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-3, atol=1e-4, msg=k)
    with pytest.raises(ValueError, match="written for"):
        api.load_teacher_shards(other, tmp_path, api.teacher_meta(s.replace(dataset="fashion-mnist")))
    with pytest.raises(FileNotFoundError, match="teacher_shard"):
        api.load_teacher_shards(other, tmp_path / "none", api.teacher_meta(s))


@pytest.mark.parametrize("name", ["paper", "recommended"])
def test_configs_validate_and_state_the_protocol(name):
    cfg = json.loads((ROOT / "configs" / "gpu" / f"{name}.json").read_text())
    s = api.settings(cfg["settings"])
    api.settings({**cfg["settings"], **cfg["smoke"]})
    assert s.dataset == "fashion-mnist" and s.teacher == "resnet18" and s.epochs == 200
    assert s.alpha == 1.0 and s.cache_teacher_logits and set(s.mechanisms) == {"bank", "batch"}
    if name == "paper":   # the protocol: s = 50, lr 0.01, the paper's 512-256 anchor head trained per Eq. 4
        assert s.lr == 0.01 and s.s == 50 and s.head_form == "anchor" and s.head_hidden == (512, 256)
        assert s.batch_size == 100
        assert s.relation_weight == 0 and s.graph == "pool" and s.pool_size is None
    # the student is the shipped preset's (configs/fashion-mnist/{paper,main}.yaml); only the teacher,
    # its training and the budget are the GPU protocol's
    yaml_name = "paper" if name == "paper" else "main"
    path = ROOT / "configs" / "fashion-mnist" / f"{yaml_name}.yaml"
    ref, written = settings_from_file(path), set(read_mapping(path))
    keys = ["head_form", "head_hidden", "embedding_channels", "code_scale", "graph", "graph_nca", "pool_size",
            "pool_refresh", "relation_weight", "s", "hidden", "num_layers", "conv", "alpha", "tau", "batch_size",
            "label_vote"] + (["dropout", "lr", "bank_size"] if name == "recommended" else [])
    assert {"head_form", "s", "graph", "graph_nca"} <= written
    differ = {k: (getattr(s, k), getattr(ref, k)) for k in keys if k in written and getattr(s, k) != getattr(ref, k)}
    assert not differ, f"configs/gpu/{name}.json differs from {yaml_name}.yaml: {differ}"


def test_run_all_rejects_unknown_part():
    r = subprocess.run(["bash", str(GPU / "run_all.sh"), "bogus"], cwd=ROOT, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "usage" in r.stderr


def test_protocol_table_says_when_epochs_were_scaled():
    run = {"config": "paper", "seed": 0, "epochs": 40, "epochs_configured": 200, "epochs_scaled": True,
           "test": {"last": {"bank": 0.9, "batch": 0.8}, "best_val": {"bank": 0.91, "batch": 0.81}},
           "costs": {"teacher": {"flops_per_sample": 1e9},
                     "student": {"flops": {"bank": {"per_sample": 1e6}, "batch": {"per_sample": 2e6}}}}}
    table = protocol_table({"teacher": {"test_acc": 0.95, "target_acc": 0.94, "meets_target": True}, "runs": [run]})
    assert "40 (scaled from 200)" in table and "1000.0x, 500.0x" in table and "90.00 / 91.00" in table
    assert "scaled down to fit the time budget" in table


def test_protocol_estimate_projects_epochs(tmp_path):
    _run([str(GPU / "protocol.py"), "--estimate", "--smoke", "--threads", "1", "--budget-s", "100",
          "--out", str(tmp_path)])
    est = json.loads((tmp_path / "estimate.json").read_text())
    assert est["teacher"]["step_s"] > 0 and est["teacher"]["epoch_s"] > 0
    for name in ("paper", "recommended"):
        assert est[name]["step_s"] > 0
        assert est[name]["epochs_200_s"] == pytest.approx(200 * est[name]["epoch_s"])


def test_epoch_plan_allows_for_pool_graph_growth():
    # A pool-trained graph student's steps grow after the probe (its GCN graph gains pool nodes):
    # its plan is POOL_GROWTH times the probed steps; a batch-graph student and the KD-MLP are not.
    import protocol
    cfg = json.loads((ROOT / "configs" / "gpu" / "paper.json").read_text(encoding="utf-8"))
    paper = api.settings(cfg["settings"])
    probe = {"step_s": 0.01, "val_s": 0.5}
    steps = 54_000 // paper.batch_size
    assert paper.graph == "pool"
    assert protocol.student_epoch_s(paper, probe, 54_000) == pytest.approx(
        protocol.SAFETY * (protocol.POOL_GROWTH * steps * 0.01 + 0.5))
    for plain in (paper.replace(graph="batch"), api.kd_mlp_settings(paper)):
        assert protocol.student_epoch_s(plain, probe, 54_000) == pytest.approx(protocol.SAFETY * (steps * 0.01 + 0.5))
    assert protocol.POOL_GROWTH >= 1.9 / protocol.SAFETY   # the larger of the two measured H200 ratios


def test_kd_mlp_only_refuses_a_non_positive_epoch_count(tmp_path):
    r = subprocess.run([sys.executable, str(GPU / "protocol.py"), "--smoke", "--kd-mlp-only", "0", "--out", str(tmp_path)],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--kd-mlp-only must be a number of epochs >= 1, got 0" in r.stderr
    assert not (tmp_path / "protocol.json").exists()
