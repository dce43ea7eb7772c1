"""The data of a run, loaded and split once and handed to every stage.

Whole splits are loaded as normalised tensors (:func:`tg_cnn2gnn.data.load_tensors`);
``subset`` / ``test_subset`` keep a class-stratified part of the training / test split;
``val_fraction`` of what remains is held out (stratified, ``split_seed``) for validation.
The teacher, the distiller, the measurements and ``evaluate`` all read the same
:class:`RunData`, so nothing is carved twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from tg_cnn2gnn.run.config import Settings, SettingsError


@dataclass(frozen=True)
class RunData:
    """Tensors of a run (normalised images ``[*, C, H, W]``, labels ``[*]``).

    ``train_idx`` / ``val_idx`` are the positions of the training / validation parts in the
    (subset) training split ``x``; training sample ``k`` (anchor-head output ``k``) is
    ``x[train_idx[k]]``, which is ``x_train[k]``."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor          # [V, C, H, W]; V = 0 without a validation split
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    info: Any              # tg_cnn2gnn.data.DatasetInfo
    x: Tensor              # [N, C, H, W] the training split after ``subset`` (train + validation parts)
    y: Tensor
    train_idx: Tensor
    val_idx: Tensor

    @property
    def n_train(self) -> int:
        return int(self.y_train.numel())

    @property
    def n_val(self) -> int:
        return int(self.y_val.numel())

    @property
    def n_test(self) -> int:
        return int(self.y_test.numel())

    @property
    def in_features(self) -> int:
        """Flattened image size ``F = C * H * W`` (the students' input width)."""
        return int(self.x_train[0].numel())

    @property
    def train_features(self) -> Tensor:
        """``[n_train, F]`` training features, row ``k`` = training sample ``k`` (what ``predict`` needs)."""
        return self.x_train.flatten(1)

    @property
    def val(self) -> tuple[Tensor, Tensor] | None:
        """``(x_val, y_val)``, or ``None`` without a validation split."""
        return (self.x_val, self.y_val) if self.n_val else None


def stratified_subset(y: Tensor, n: int | None, seed: int) -> Tensor | None:
    """Positions of a class-stratified subset of about ``n`` of the labels ``y``
    (``None``: keep everything, ``n`` is ``None`` or not smaller than ``len(y)``)."""
    from tg_cnn2gnn.data import stratified_split
    if n is None or n >= y.numel():
        return None
    return stratified_split(y, n / y.numel(), seed=seed)[1]


def split_data(x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, info: Any, *, subset: int | None = None,
               test_subset: int | None = None, val_fraction: float = 0.1, split_seed: int = 0) -> RunData:
    """Subset and split loaded tensors (see the module docstring); the one place that does it."""
    from tg_cnn2gnn.data import train_val_split
    keep = stratified_subset(y, subset, split_seed)
    if keep is not None:
        x, y = x[keep], y[keep]
    keep = stratified_subset(y_test, test_subset, split_seed)
    if keep is not None:
        x_test, y_test = x_test[keep], y_test[keep]
    if val_fraction:
        tr, va = train_val_split(y, val_fraction, seed=split_seed)
    else:
        tr, va = torch.arange(y.numel()), torch.zeros(0, dtype=torch.long)
    return RunData(x[tr], y[tr], x[va], y[va], x_test, y_test, info, x, y, tr, va)


def load_data(settings: Settings) -> RunData:
    """Load the dataset of ``settings`` and split it (:func:`split_data`). Missing files raise
    the loader's :class:`FileNotFoundError` (it says where the files were looked for)."""
    from tg_cnn2gnn.data import dataset_info, load_tensors
    s = settings
    info = dataset_info(s.dataset)
    kw = {"download": s.download, "check_integrity": s.check_integrity}
    try:
        x, y = load_tensors(s.dataset, "train", s.root, **kw)
    except ValueError as e:
        if "MD5" in str(e):  # name the command-line switch beside the Python argument
            raise SettingsError(f"{' '.join(str(e).split())} (command line: --no-check-integrity)") from None
        raise
    xt, yt = load_tensors(s.dataset, "test", s.root, **kw)
    data = split_data(x, y, xt, yt, info, subset=s.subset, test_subset=s.test_subset, val_fraction=s.val_fraction,
                      split_seed=s.split_seed)
    if data.n_train < s.batch_size:
        raise SettingsError(f"only {data.n_train} training images after --subset/--val-fraction, fewer than "
                            f"--batch-size={s.batch_size}")
    if data.n_train < s.bank_size:
        raise SettingsError(f"--bank-size={s.bank_size} exceeds the {data.n_train} training images")
    return data
