"""Per-dataset image pipelines (PIL or tensor) and batch-level tensor augmentation."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torchvision import transforms as T

from tg_cnn2gnn.data.info import dataset_info


def get_transform(name: str, train: bool, *, augment: bool | None = None,
                  normalize: bool = True) -> Callable:
    """The standard pipeline of dataset ``name``.

    PIL datasets (all but ``digits``): ``[RandomCrop(size, padding), RandomHorizontalFlip()]``
    when augmenting, then ``ToTensor()`` and ``Normalize(mean, std)``. ``digits``
    samples are already ``[1, 8, 8]`` tensors in ``[0, 1]``: only ``Normalize``.

    Args:
        name (str): dataset name (see :data:`tg_cnn2gnn.data.DATASETS`).
        train (bool): pipeline for training (augmentation on by default) or evaluation.
        augment (bool, optional): override the augmentation choice (default: ``train``).
        normalize (bool): standardise with the dataset's mean and std.
    """
    info = dataset_info(name)
    augment = bool(train) if augment is None else bool(augment)
    steps: list[Callable] = []
    if augment:
        if info.crop_padding > 0:
            steps.append(T.RandomCrop(info.image_size, padding=info.crop_padding))
        if info.hflip:
            steps.append(T.RandomHorizontalFlip())
    if info.name != "digits":
        steps.append(T.ToTensor())
    if normalize:
        steps.append(T.Normalize(info.mean, info.std))
    return T.Compose(steps)


def _stats(name: str, x: Tensor) -> tuple[Tensor, Tensor]:
    info = dataset_info(name)
    if x.dim() < 3 or x.size(-3) != info.channels:
        raise ValueError(f"x must have shape [..., {info.channels}, H, W] for {info.name!r}, "
                         f"got {tuple(x.shape)}")
    mean = torch.tensor(info.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.tensor(info.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return mean, std


def normalize(x: Tensor, name: str) -> Tensor:
    """``(x - mean) / std`` per channel for images ``x`` of shape ``[..., C, H, W]`` in ``[0, 1]``."""
    mean, std = _stats(name, x)
    return (x - mean) / std


def denormalize(x: Tensor, name: str) -> Tensor:
    """Inverse of :func:`normalize`."""
    mean, std = _stats(name, x)
    return x * std + mean


def augment_batch(x: Tensor, name: str, *, normalized: bool = True,
                  generator: torch.Generator | None = None) -> Tensor:
    """The training augmentation of ``name`` applied to a batch of image tensors.

    Equivalent in distribution to the PIL pipeline of :func:`get_transform`:
    each image independently gets a random crop of its own size from the image
    zero-padded by ``crop_padding`` pixels (black; its normalised value when
    ``normalized``), then a horizontal flip with probability 1/2 where the
    dataset uses flips. Runs on any device, without a Python loop.

    Args:
        x (Tensor): images ``[B, C, H, W]``.
        name (str): dataset name.
        normalized (bool): whether ``x`` is already normalised (decides the padding value).
        generator (torch.Generator, optional): random source (on ``x``'s device) for reproducibility.

    Returns:
        Tensor ``[B, C, H, W]``, a new tensor (``x`` is unchanged).
    """
    info = dataset_info(name)
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images [B, C, H, W], got shape {tuple(x.shape)}")
    mean, std = _stats(name, x)
    B, C, H, W = x.shape
    p = info.crop_padding
    out = x
    if p > 0:
        fill = (-mean / std) if normalized else torch.zeros_like(mean)
        padded = fill.expand(C, H + 2 * p, W + 2 * p).unsqueeze(0).repeat(B, 1, 1, 1)
        padded[:, :, p:p + H, p:p + W] = x
        oy = torch.randint(0, 2 * p + 1, (B,), generator=generator, device=x.device)
        ox = torch.randint(0, 2 * p + 1, (B,), generator=generator, device=x.device)
        rows = (oy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]  # [B,1,H,1]
        cols = (ox[:, None] + torch.arange(W, device=x.device))[:, None, None, :]  # [B,1,1,W]
        b = torch.arange(B, device=x.device)[:, None, None, None]
        c = torch.arange(C, device=x.device)[None, :, None, None]
        out = padded[b, c, rows, cols]
    if info.hflip:
        flip = torch.rand(B, generator=generator, device=x.device) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out if out is not x else x.clone()
