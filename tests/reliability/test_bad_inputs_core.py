"""Table of bad inputs to the functional core, the transform and the data API: each gives a
ValueError / TypeError whose message names the argument (never NaN, never a deep traceback)."""
import csv

import numpy as np
import pytest
import torch
from PIL import Image
from torch_geometric.data import Data

from tg_cnn2gnn.data import (Digits, MiniImageNet, augment_batch, get_dataset, load_tensors, normalize,
                             stratified_split, train_val_split)
from tg_cnn2gnn.functional import (dense_to_edges, edges_to_dense, pairwise_distance, sparse_simplex,
                                   sparse_simplex_graph, sparse_simplex_topk)
from tg_cnn2gnn.transforms import SparseSimplexGraph

X = torch.randn(8, 3)


def _with(value, row=2):
    x = X.clone()
    x[row, 1] = value
    return x


NAN, INF = float("nan"), float("inf")
CASES = [
    # ------------------------------------------------------------ functional: sparse_simplex_graph
    ("graph x list", lambda: sparse_simplex_graph([[1.0, 2.0]], 1), TypeError, r"x must be a torch.Tensor"),
    ("graph x 1-D", lambda: sparse_simplex_graph(torch.ones(5), 1), ValueError, r"x must be 2-D"),
    ("graph x 3-D", lambda: sparse_simplex_graph(torch.ones(2, 5, 3), 1), ValueError, r"x must be 2-D"),
    ("graph x int", lambda: sparse_simplex_graph(torch.ones(5, 2, dtype=torch.long), 1), TypeError,
     r"x must be a floating-point tensor"),
    ("graph x NaN", lambda: sparse_simplex_graph(_with(NAN), 2), ValueError, r"x contains NaN in rows \[2\]"),
    ("graph x inf", lambda: sparse_simplex_graph(_with(INF, 5), 2), ValueError,
     r"x contains \+inf or -inf in rows \[5\]"),
    ("graph x -inf", lambda: sparse_simplex_graph(_with(-INF, 0), 2), ValueError, r"x contains .*rows \[0\]"),
    ("graph x empty", lambda: sparse_simplex_graph(torch.zeros(0, 3), 1), ValueError, r"s=1 is out of range"),
    ("graph x one row", lambda: sparse_simplex_graph(torch.zeros(1, 3), 1), ValueError, r"s=1 is out of range"),
    ("graph s 0", lambda: sparse_simplex_graph(X, 0), ValueError, r"s=0 is out of range.*1 <= s <= 6"),
    ("graph s negative", lambda: sparse_simplex_graph(X, -3), ValueError, r"s=-3 is out of range"),
    ("graph s huge", lambda: sparse_simplex_graph(X, 10 ** 12), ValueError, r"s=1000000000000 is out of range"),
    ("graph s = N-1", lambda: sparse_simplex_graph(X, 7), ValueError, r"s=7 is out of range"),
    ("graph s float", lambda: sparse_simplex_graph(X, 2.0), TypeError, r"s must be an int, got 2.0"),
    ("graph s bool", lambda: sparse_simplex_graph(X, True), TypeError, r"s must be an int, got True"),
    ("graph s tensor", lambda: sparse_simplex_graph(X, torch.tensor(2)), TypeError, r"s must be an int"),
    ("graph metric", lambda: sparse_simplex_graph(X, 2, metric="l1"), ValueError,
     r"metric='l1' is not supported; allowed values: 'sqeuclidean'"),
    ("graph chunk 0", lambda: sparse_simplex_graph(X, 2, chunk_size=0), ValueError, r"chunk_size must be a positive"),
    ("graph chunk float", lambda: sparse_simplex_graph(X, 2, chunk_size=2.5), ValueError, r"chunk_size must be"),
    ("graph loop str", lambda: sparse_simplex_graph(X, 2, loop="no"), TypeError, r"loop must be True or False"),
    ("graph symmetrize", lambda: sparse_simplex_graph(X, 2, symmetrize=None), TypeError, r"symmetrize must be"),
    ("graph batch list", lambda: sparse_simplex_graph(X, 1, batch=[0] * 8), TypeError, r"batch must be a torch"),
    ("graph batch length", lambda: sparse_simplex_graph(X, 1, batch=torch.zeros(7, dtype=torch.long)), ValueError,
     r"batch must be a 1-D tensor with one entry per row of x \(8\), got shape \(7,\)"),
    ("graph batch 2-D", lambda: sparse_simplex_graph(X, 1, batch=torch.zeros(8, 1, dtype=torch.long)), ValueError,
     r"batch must be a 1-D tensor"),
    ("graph batch float", lambda: sparse_simplex_graph(X, 1, batch=torch.zeros(8)), TypeError,
     r"batch must hold integer graph ids"),
    ("graph batch negative", lambda: sparse_simplex_graph(X, 1, batch=torch.tensor([0, 0, 0, 0, -1, -1, -1, -1])),
     ValueError, r"batch must hold graph ids >= 0, got -1 in rows \[4, 5, 6, 7\]"),
    ("graph batch small graph", lambda: sparse_simplex_graph(X, 3, batch=torch.tensor([0] * 6 + [1] * 2)),
     ValueError, r"s=3 is out of range.*smallest graph"),
    # ------------------------------------------------------------ functional: Eq. 3 on distances
    ("simplex dist 1-D", lambda: sparse_simplex(torch.rand(6), 2), ValueError, r"dist must be 2-D"),
    ("simplex dist NaN", lambda: sparse_simplex(_with(NAN).abs(), 2), ValueError, r"dist contains NaN in rows \[2\]"),
    ("simplex dist inf", lambda: sparse_simplex(_with(INF).abs(), 1), ValueError, r"dist contains \+inf"),
    ("simplex dist int", lambda: sparse_simplex(torch.ones(3, 3, dtype=torch.int32), 1), TypeError,
     r"dist must be a floating-point"),
    ("simplex s too big", lambda: sparse_simplex(torch.rand(3, 4), 4), ValueError, r"s=4 is out of range"),
    ("simplex s 0", lambda: sparse_simplex_topk(torch.rand(3, 4), 0), ValueError, r"s=0 is out of range"),
    ("simplex s str", lambda: sparse_simplex_topk(torch.rand(3, 4), "2"), TypeError, r"s must be an int"),
    ("simplex not square", lambda: sparse_simplex(torch.rand(3, 6), 2, exclude_self=True), ValueError,
     r"exclude_self=True needs a square dist"),
    ("simplex empty", lambda: sparse_simplex(torch.rand(0, 0), 1), ValueError, r"s=1 is out of range"),
    # ------------------------------------------------------------ functional: distances, conversions
    ("distance D mismatch", lambda: pairwise_distance(X, torch.randn(4, 2)), ValueError,
     r"x and y must have the same number of features"),
    ("distance y NaN", lambda: pairwise_distance(X, _with(NAN, 6)), ValueError, r"y contains NaN in rows \[6\]"),
    ("distance x inf", lambda: pairwise_distance(_with(INF, 1), X), ValueError, r"x contains \+inf .*rows \[1\]"),
    ("distance dtype", lambda: pairwise_distance(X, X.double()), TypeError, r"x and y must share dtype"),
    ("distance metric", lambda: pairwise_distance(X, X, "manhattan"), ValueError, r"metric='manhattan'"),
    ("distance y array", lambda: pairwise_distance(X, X.numpy()), TypeError, r"y must be a torch.Tensor"),
    ("dense_to_edges str", lambda: dense_to_edges("adj"), ValueError, r"adj must be a \[N, N\]"),
    ("dense_to_edges 4-D", lambda: dense_to_edges(torch.ones(1, 1, 2, 2)), ValueError, r"adj must be"),
    ("dense_to_edges rect", lambda: dense_to_edges(torch.ones(2, 3)), ValueError, r"adj must be square"),
    ("edges_to_dense shape", lambda: edges_to_dense(torch.zeros(3, dtype=torch.long)), ValueError,
     r"edge_index must have shape \[2, E\]"),
    ("edges_to_dense batch", lambda: edges_to_dense(torch.zeros(2, 1, dtype=torch.long), batch_size=2), ValueError,
     r"needs num_nodes"),
    # ------------------------------------------------------------ transforms
    ("transform s 0", lambda: SparseSimplexGraph(s=0), ValueError, r"s must be a positive int, got 0"),
    ("transform s str", lambda: SparseSimplexGraph(s="3"), ValueError, r"s must be a positive int, got '3'"),
    ("transform metric", lambda: SparseSimplexGraph(metric="l2"), ValueError, r"metric='l2' is not supported"),
    ("transform chunk", lambda: SparseSimplexGraph(chunk_size=-1), ValueError, r"chunk_size must be a positive"),
    ("transform attr", lambda: SparseSimplexGraph(attr=3), TypeError, r"attr must be a str"),
    ("transform loop", lambda: SparseSimplexGraph(loop="yes"), TypeError, r"loop must be True or False"),
    ("transform no attr", lambda: SparseSimplexGraph(2)(Data(x=X)), ValueError,
     r"SparseSimplexGraph\(attr='pos'\) found no data.pos"),
    ("transform NaN pos", lambda: SparseSimplexGraph(2)(Data(pos=_with(NAN, 3))), ValueError,
     r"x contains NaN in rows \[3\]"),
    ("transform s too big", lambda: SparseSimplexGraph(9)(Data(pos=X)), ValueError, r"s=9 is out of range"),
    # ------------------------------------------------------------ data
    ("dataset name int", lambda: get_dataset(3), TypeError, r"name must be a str, got 3"),
    ("dataset name unknown", lambda: get_dataset("mnist"), ValueError, r"unknown dataset name 'mnist'"),
    ("dataset split", lambda: get_dataset("digits", split="val"), ValueError, r"split='val' is not supported"),
    ("dataset transform", lambda: get_dataset("digits", transform=5), TypeError, r"transform must be 'default'"),
    ("dataset transform str", lambda: get_dataset("digits", transform="fancy"), ValueError, r"transform='fancy'"),
    ("dataset download", lambda: get_dataset("digits", download="yes"), TypeError, r"download must be True or False"),
    ("dataset check_integrity", lambda: get_dataset("digits", check_integrity=1), TypeError,
     r"check_integrity must be True or False"),
    ("dataset normalize", lambda: load_tensors("digits", normalize="no"), TypeError, r"normalize must be True"),
    ("dataset root", lambda: load_tensors("cifar10", "train", 5), TypeError, r"root must be a path"),
    ("dataset unknown kwarg", lambda: get_dataset("digits", image_size=3), TypeError, r"image_size"),
    ("digits test_fraction", lambda: Digits(test_fraction=0.0), ValueError, r"test_fraction must be a float"),
    ("digits seed", lambda: Digits(seed=-1), ValueError, r"seed"),
    ("mini-imagenet size", lambda: MiniImageNet(".", image_size=0), ValueError, r"image_size must be a positive"),
    ("normalize channels", lambda: normalize(torch.rand(2, 1, 32, 32), "cifar10"), ValueError,
     r"x must have shape \[\.\.\., 3, H, W\] for 'cifar10'"),
    ("augment 3-D", lambda: augment_batch(torch.rand(3, 32, 32), "cifar10"), ValueError, r"x must be a batch"),
    ("val_fraction", lambda: train_val_split(torch.arange(10) % 2, 1.5), ValueError, r"val_fraction"),
    ("split fraction NaN", lambda: stratified_split(torch.arange(10) % 2, float("nan")), ValueError, r"fraction"),
]


@pytest.mark.parametrize("call, error, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_case_count():
    assert len(CASES) >= 60


def test_fashion_mnist_labels_out_of_range_and_truncated_header(tmp_path, monkeypatch):
    import gzip
    import struct

    import tg_cnn2gnn.data.fashion_mnist as fm
    from tg_cnn2gnn.data import FashionMNIST, read_idx
    monkeypatch.setattr(fm, "FASHION_MNIST_SYSTEM_DIRS", [])
    for stem, arr in (("t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8)),
                      ("t10k-labels-idx1-ubyte", np.array([3, 12], np.uint8))):
        head = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
        with gzip.open(tmp_path / f"{stem}.gz", "wb") as f:
            f.write(head + arr.tobytes())
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: Fashion-MNIST labels must be 0..9, got .*12"):
        FashionMNIST(tmp_path, train=False)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\xff")
    with pytest.raises(ValueError, match=r"bad is truncated: its header announces 255 dimensions"):
        read_idx(tmp_path / "bad")


def _mini_csv(tmp_path, name):
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    for i in range(2):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(images / f"a{i}.png")
    with open(tmp_path / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([("filename", "label"), ("a0.png", "n1"), ("a1.png", "n2"), (name, "n2")])


@pytest.mark.parametrize("name", ["../secret.png", "/etc/passwd", "images/../../x.png", "sub/../../x.png"])
def test_mini_imagenet_csv_names_cannot_leave_images(tmp_path, name):
    (tmp_path / "secret.png").write_bytes(b"")
    _mini_csv(tmp_path, name)
    with pytest.raises(ValueError, match=r"train.csv lists .* which is outside .*images"):
        MiniImageNet(tmp_path)


def test_mini_imagenet_refuses_non_raster_decoders(tmp_path):
    _mini_csv(tmp_path, "a1.png")
    # PostScript content under a .png name: PIL would hand it to Ghostscript by content
    (tmp_path / "images" / "a1.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4 4\nshowpage\n")
    ds = MiniImageNet(tmp_path, "train", test_fraction=0.5)
    bad = next(i for i, (p, _) in enumerate(ds.samples) if p.endswith("a1.png"))
    with pytest.raises(ValueError, match=r"a1.png is not an image in one of the accepted formats"):
        ds[bad]
