"""Reading image files (good and bad ones together) and the predict command's helpers."""
import numpy as np
import pytest
import torch
from PIL import Image

from tg_cnn2gnn.inference import format_topk, read_images
from tg_cnn2gnn.inference.commands import export_run, load_for_predict, predict_images
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead

MEAN, STD = 0.3053, 0.3760


def _gray(path, size, seed):
    arr = np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8)
    Image.fromarray(arr, mode="L").save(path)
    return arr


def test_read_images_keeps_going_past_bad_files(tmp_path):
    a = _gray(tmp_path / "a.png", (8, 8), 0)
    _gray(tmp_path / "big.png", (40, 30), 1)                     # any size: resized
    Image.fromarray(np.zeros((8, 8, 3), np.uint8), mode="RGB").save(tmp_path / "rgb.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG but not really")
    batch_arr = np.random.default_rng(2).random((3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "batch.npy", batch_arr)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 8, 8), np.float32))
    paths = [tmp_path / n for n in ("a.png", "rgb.png", "bad.png", "missing.png", "big.png",
                                    "batch.npy", "wrong.npy")]
    out = read_images(paths, channels=1, size=8, mean=MEAN, std=STD)
    assert out.x.shape == (5, 1, 8, 8)
    assert [n.split("/")[-1] for n in out.names] == ["a.png", "big.png", "batch.npy[0]",
                                                     "batch.npy[1]", "batch.npy[2]"]
    errors = {p.split("/")[-1]: why for p, why in out.errors}
    assert set(errors) == {"rgb.png", "bad.png", "missing.png", "wrong.npy"}
    assert "3 channel(s)" in errors["rgb.png"] and "expects 1" in errors["rgb.png"]
    assert "not a readable PNG/JPEG" in errors["bad.png"]
    assert "does not exist" in errors["missing.png"]
    assert "[N, 1, H, W]" in errors["wrong.npy"]
    torch.testing.assert_close(out.x[0, 0], (torch.tensor(a, dtype=torch.float32) / 255 - MEAN) / STD)
    torch.testing.assert_close(out.x[2:, 0], (torch.from_numpy(batch_arr) - MEAN) / STD)


def test_rgb_jpeg_and_argument_errors(tmp_path):
    Image.fromarray(np.full((20, 12, 3), 255, np.uint8), mode="RGB").save(tmp_path / "w.jpg")
    out = read_images([tmp_path / "w.jpg"], channels=3, size=(16, 16), mean=(0.5, 0.5, 0.5), std=0.5)
    assert out.x.shape == (1, 3, 16, 16) and not out.errors
    torch.testing.assert_close(out.x, torch.ones(1, 3, 16, 16), atol=0.02, rtol=0)
    with pytest.raises(ValueError, match="mean must have 3 value"):
        read_images([], channels=3, size=8, mean=(0.1, 0.2), std=1.0)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        read_images([], channels=2, size=8, mean=0.0, std=1.0)


def test_format_topk_and_missing_class_names():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    lines = format_topk(logits, ["cat", "dog", "eel"], k=2, names=["x.png", "y.png"])
    p = logits.softmax(1)
    assert lines[0] == f"x.png: dog {p[0, 1]:.3f}, eel {p[0, 2]:.3f}"
    assert lines[1].startswith("y.png: cat ")
    with pytest.raises(ValueError, match="class names are missing"):
        format_topk(logits, None)
    with pytest.raises(ValueError, match="has 2 names but the model has 3 classes"):
        format_topk(logits, ["a", "b"])


@pytest.mark.parametrize("suffix", [".pt", ".pt2"])
def test_export_then_predict_png_files_with_a_bad_one(digits, tmp_path, suffix):
    x, _, xt, _ = digits
    torch.manual_seed(0)
    model = CNN2GNN(LearnedGraphHead(64, len(x), s=6, hidden_channels=(16,)), GraphStudent(64, 16, 10))
    meta = {"class_names": [f"digit{i}" for i in range(10)], "channels": 1, "image_size": 8,
            "mean": [MEAN], "std": [STD]}
    path = export_run(model, x, meta, tmp_path / f"model{suffix}", bank_size=50)
    pixels = ((xt[:3] * STD + MEAN).clamp(0, 1) * 255).round().to(torch.uint8).view(3, 8, 8)
    files = []
    for i in range(3):
        Image.fromarray(pixels[i].numpy(), mode="L").save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"garbage")
    pred, meta_back = load_for_predict(path)
    assert meta_back["bank_size"] == 50 and meta_back["class_names"] == meta["class_names"]
    res = predict_images(pred, meta_back, [files[0], tmp_path / "broken.png", files[1], files[2]], k=2)
    assert len(res.lines) == 3 and len(res.errors) == 1 and "broken.png" in res.errors[0]
    expect = model.predict(((pixels.float() / 255 - MEAN) / STD).view(3, 64), train_x=x, bank_size=50)
    torch.testing.assert_close(res.logits, expect, rtol=1e-4, atol=1e-4)
    assert all(line.split(": ")[1].startswith(f"digit{int(i)} ") for line, i in zip(res.lines, expect.argmax(1)))
    with pytest.raises(ValueError, match="no class_names"):
        predict_images(pred, {**meta_back, "class_names": None}, files)
