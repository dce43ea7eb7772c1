"""Inputs of the training loops: in-memory tensors (fast path) or a map-style Dataset."""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from tg_cnn2gnn.distill._checks import check_features, check_images, check_labels


class TensorSource:
    """In-memory training data: images ``[N, ...]``, labels ``[N]``, optional node features ``[N, F]``."""

    def __init__(self, x: Tensor, y: Tensor, features: Tensor | None = None) -> None:
        self.x = x
        self.y = y
        self.features = features

    def __len__(self) -> int:
        return self.x.size(0)

    def iterate(self, batches: list[Tensor], device: torch.device, seed: int = 0
                ) -> Iterator[tuple[Tensor, Tensor, Tensor | None, Tensor]]:
        """``(images, labels, features | None, positions)`` per batch, on ``device``.

        On CUDA the whole training set is copied to the device once (the first epoch) and
        every batch is gathered there: one small pinned, non-blocking copy of the positions
        per step instead of a pageable copy of the images (no host synchronisation)."""
        if device.type != "cuda":
            for pos in batches:
                f = None if self.features is None else self.features[pos].to(device)
                yield self.x[pos].to(device), self.y[pos].to(device), f, pos.to(device)
            return
        x, y, feats = self._resident(device)
        for pos in batches:
            p = pos.pin_memory().to(device, non_blocking=True)
            yield (x.index_select(0, p), y.index_select(0, p),
                   None if feats is None else feats.index_select(0, p), p)

    def _resident(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
        cached = getattr(self, "_on_device", None)
        if cached is None or cached[0].device != device:
            move = (lambda t: None if t is None else t.pin_memory().to(device, non_blocking=True))
            cached = (move(self.x), move(self.y), move(self.features))
            self._on_device = cached
        return cached

    def images(self) -> Tensor:
        return self.x

    def node_features(self) -> Tensor:
        return self.features if self.features is not None else self.x.flatten(1)


class _PositionDataset(Dataset):
    """``(image, label, k)`` for the ``k``-th selected item of ``dataset`` (checks a yielded index)."""

    def __init__(self, dataset: Dataset, positions: Tensor) -> None:
        self.dataset = dataset
        self.positions = positions.tolist()

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> tuple[Any, Any, int]:
        i = self.positions[k]
        item = self.dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise ValueError(f"dataset items must be (image, label) or (image, label, index), got "
                             f"{type(item).__name__}")
        if len(item) == 3 and int(item[2]) != i:
            raise ValueError(f"dataset item {i} reports index {int(item[2])}; the index element must be the "
                             f"item's position in the dataset (wrap it with IndexedDataset)")
        return item[0], item[1], k


class DatasetSource:
    """Training data from a map-style dataset yielding ``(image, label[, index])``.

    ``positions`` are the dataset indices of the training part (after any validation
    split); the ``k``-th of them is training sample ``k`` (the anchor head's neuron ``k``).
    """

    def __init__(self, dataset: Dataset, positions: Tensor, num_workers: int = 0,
                 eval_dataset: Dataset | None = None) -> None:
        self.dataset = dataset
        self.eval_dataset = eval_dataset
        self.positions = positions
        self.num_workers = num_workers
        self._cache: tuple[Tensor, Tensor] | None = None

    def __len__(self) -> int:
        return self.positions.numel()

    def iterate(self, batches: list[Tensor], device: torch.device, seed: int = 0
                ) -> Iterator[tuple[Tensor, Tensor, Tensor | None, Tensor]]:
        """Like :meth:`TensorSource.iterate`. ``seed`` (derived from the run's seed and the
        epoch) seeds the loader's own generator: the workers' RNGs (random transforms) are
        reproducible and the global torch RNG is not consumed."""
        loader = DataLoader(_PositionDataset(self.dataset, self.positions), batch_sampler=[b.tolist() for b in batches],
                            num_workers=self.num_workers, pin_memory=device.type == "cuda",
                            generator=torch.Generator().manual_seed(seed))
        nb = device.type == "cuda"
        for (img, lab, k), pos in zip(loader, batches):
            if not torch.equal(k.long(), pos):
                raise RuntimeError("the data loader returned samples out of order")
            yield (img.float().to(device, non_blocking=nb), torch.as_tensor(lab).long().to(device, non_blocking=nb),
                   None, pos.to(device, non_blocking=nb))

    def _materialize(self) -> tuple[Tensor, Tensor]:
        if self._cache is None:
            ds = self.eval_dataset if self.eval_dataset is not None else self.dataset
            self._cache = materialize(ds, self.positions, self.num_workers)
        return self._cache

    def images(self) -> Tensor:
        return self._materialize()[0]

    @property
    def y(self) -> Tensor:
        return self._materialize()[1]

    def node_features(self) -> Tensor:
        return self.images().flatten(1)


def materialize(dataset: Dataset, positions: Tensor | None = None, num_workers: int = 0,
                batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Stack ``dataset[i]`` for ``i`` in ``positions`` (default all) into ``(x [N, ...], y [N])``."""
    if positions is None:
        positions = torch.arange(len(dataset))  # type: ignore[arg-type]
    ds = _PositionDataset(dataset, positions)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0))  # leaves the global RNG alone
    xs, ys = [], []
    for img, lab, _ in loader:
        xs.append(img.float())
        ys.append(torch.as_tensor(lab).long())
    return torch.cat(xs), torch.cat(ys)


def as_eval_data(name: str, obj: object) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(x, y)``, ``(x, y, features)`` or a Dataset -> ``(x, y, features | None)`` tensors."""
    if isinstance(obj, Dataset) and not isinstance(obj, (tuple, list)):
        x, y = materialize(obj)
        return x, y, None
    if not isinstance(obj, (tuple, list)) or len(obj) not in (2, 3):
        raise TypeError(f"{name} must be a pair (x, y), a triple (x, y, features) or a Dataset, "
                        f"got {type(obj).__name__}")
    x = check_images(f"{name}[0]", obj[0])
    y = check_labels(f"{name}[1]", obj[1], x.size(0))
    f = check_features(f"{name}[2]", obj[2], x.size(0)) if len(obj) == 3 else None
    return x, y, f
