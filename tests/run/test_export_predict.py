"""`cnn2gnn export` and `cnn2gnn predict` on a tiny digits run: the exported predictor
reproduces the run's own bank predictions, PNG files are read like the dataset, and a bad
file among good ones is reported without stopping the others."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tg_cnn2gnn.data import DATASET_INFO
from tg_cnn2gnn.inference import load_predictor
from tg_cnn2gnn.run.serve import load_run_model

from run_helpers import TINY, cli


@pytest.fixture(scope="module")
def student_run(teacher_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("serve") / "run"
    teacher = teacher_run / "teacher" / "teacher.pt"
    code, _, err = cli(["distill", *TINY, "--teacher-checkpoint", teacher, "--out", run_dir])
    assert code == 0, err
    return run_dir


def _digit_png(path, x):
    """Write a digits image [1, 8, 8] (normalised) back as an 8-bit grey PNG of size 32x32."""
    info = DATASET_INFO["digits"]
    raw = (x[0].numpy() * info.std[0] + info.mean[0]).clip(0, 1)
    Image.fromarray((raw * 255).round().astype(np.uint8)).resize((32, 32), Image.NEAREST).save(path)


@pytest.mark.parametrize("suffix", [".pt", ".pt2"])
def test_exported_file_equals_the_runs_predictor(student_run, tmp_path, suffix):
    out = tmp_path / f"pred{suffix}"
    code, stdout, err = cli(["export", student_run, "--out", out, "--deterministic"])
    assert code == 0, err
    assert out.is_file() and str(out) in stdout
    run = load_run_model(student_run)
    x = run.data.x_test.flatten(1)
    ref = run.model.predict(x, mechanism="bank", train_x=run.data.train_features,
                            bank_size=run.settings.bank_size, seed=run.settings.eval_seed)
    if suffix == ".pt":
        pred, meta = load_predictor(out)
    else:
        from tg_cnn2gnn.inference import load_exported
        pred, meta = load_exported(out)
    assert meta["class_names"] == [str(i) for i in range(10)]
    with torch.no_grad():
        got = pred(x)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_predict_reads_pngs_and_reports_a_bad_file(student_run, tmp_path):
    run = load_run_model(student_run)
    paths = []
    for i in range(3):
        p = tmp_path / f"digit{i}.png"
        _digit_png(p, run.data.x_test[i])
        paths.append(p)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    code, stdout, err = cli(["predict", student_run, paths[0], bad, paths[1], paths[2], "--top", "2"])
    assert code == 1                                  # one file failed, the others were predicted
    lines = stdout.strip().splitlines()
    assert len(lines) == 3 and all(f"digit{i}" in lines[i] for i in range(3))
    assert "broken.png" in err and err.count("\n") == 1


def test_predict_with_an_exported_file_and_bad_arguments(student_run, tmp_path):
    out = tmp_path / "p.pt"
    assert cli(["export", student_run, "--out", out])[0] == 0
    run = load_run_model(student_run)
    np.save(tmp_path / "batch.npy", run.data.x_test[:4].numpy())
    code, stdout, err = cli(["predict", out, tmp_path / "batch.npy"])
    assert code == 0, err
    assert len(stdout.strip().splitlines()) == 4
    code, _, err = cli(["predict", out, tmp_path / "batch.npy", "--top", "0"])
    assert code == 2 and "--top=0" in err
    code, _, err = cli(["export", tmp_path / "nowhere", "--out", out])
    assert code == 2 and "does not exist" in err


def test_mlp_run_cannot_be_exported(teacher_run, tmp_path):
    run_dir = tmp_path / "mlp"
    teacher = teacher_run / "teacher" / "teacher.pt"
    assert cli(["distill", *TINY, "--method", "kd", "--student", "mlp", "--teacher-checkpoint", teacher,
                "--out", run_dir])[0] == 0
    code, _, err = cli(["export", run_dir, "--out", tmp_path / "x.pt"])
    assert code == 2 and "graph student" in err
    assert json.loads((run_dir / "summary.json").read_text())["method"] == "kd"
