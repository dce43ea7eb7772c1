"""`benchmarks/teacher_consistency.py` on a tiny digits run: its raw-pixel row is the run's own
raw-pixel class-consistency, and its features are the teacher's penultimate layer."""
import json

import torch

from run_helpers import benchmark, run_benchmark

teacher_consistency = benchmark("teacher_consistency")


def test_raw_row_matches_the_run_and_features_are_the_penultimate_layer(embedding_run):
    run_dir = embedding_run
    out = run_benchmark(teacher_consistency, [run_dir, "--threads", "1"])
    rows = {l.split("|")[3].strip(): l for l in out.splitlines() if l.startswith(f"| {run_dir} |")}
    assert set(rows) == {"penultimate features", "logits", "class probabilities", "raw pixels"}
    raw = json.loads((run_dir / "summary.json").read_text())["graph_consistency"]["raw"]
    assert rows["raw pixels"].split("|")[4].strip().startswith(f"{100 * raw:.2f} %")

    from tg_cnn2gnn.teachers import build_teacher
    teacher = build_teacher("simple-cnn", 10, in_channels=1, image_size=8, width=4).eval()
    x = torch.randn(5, 1, 8, 8)
    reps = teacher_consistency.representations(teacher, x)
    with torch.no_grad():
        torch.testing.assert_close(reps["penultimate features"], teacher.features(x).flatten(1))
        torch.testing.assert_close(reps["logits"], teacher(x))
