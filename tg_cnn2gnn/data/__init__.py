"""Image datasets for CNN2GNN: loaders, normalisation, augmentation, splits.

>>> from tg_cnn2gnn.data import load_tensors, train_val_split, IndexedDataset
>>> x, y = load_tensors("digits", "train")          # [1438, 1, 8, 8], [1438]
>>> train_idx, val_idx = train_val_split(y, 0.1, seed=0)
"""
from tg_cnn2gnn.data.datasets import (CIFAR10, CIFAR100, DATA_ENV, FASHION_MNIST_SYSTEM_DIRS, STL10, Digits,
                                      FashionMNIST, MiniImageNet, default_root, get_dataset, load_tensors)
from tg_cnn2gnn.data.idx import read_idx
from tg_cnn2gnn.data.files import CHECK_INTEGRITY_HELP
from tg_cnn2gnn.data.info import DATASET_INFO, DATASETS, SPLITS, DatasetInfo, class_names, dataset_info
from tg_cnn2gnn.data.safe_pickle import UnsafePickleError, load_pickle
from tg_cnn2gnn.data.split import IndexedDataset, get_labels, stratified_split, train_val_split
from tg_cnn2gnn.data.transforms import augment_batch, denormalize, get_transform, normalize

__all__ = [
    "DATASET_INFO", "DATASETS", "SPLITS", "DatasetInfo", "dataset_info", "class_names",
    "CHECK_INTEGRITY_HELP", "UnsafePickleError", "load_pickle",
    "get_dataset", "load_tensors", "default_root", "DATA_ENV", "FASHION_MNIST_SYSTEM_DIRS",
    "FashionMNIST", "Digits", "CIFAR10", "CIFAR100", "STL10", "MiniImageNet",
    "IndexedDataset", "get_labels", "stratified_split", "train_val_split",
    "get_transform", "normalize", "denormalize", "augment_batch", "read_idx",
]
