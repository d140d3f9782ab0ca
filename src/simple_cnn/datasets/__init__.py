"""Custom Kedro catalog datasets: NumPy arrays, PyTorch weights and raw image sources."""

from simple_cnn.datasets.json_dataset import AtomicJSONDataset
from simple_cnn.datasets.numpy_dataset import NumpyDataset
from simple_cnn.datasets.sources import (
    CheckpointFileDataset,
    Cifar10ArchiveDataset,
    ImageFilesDataset,
    ImageFolderDataset,
    NewestJSONDataset,
    NewestVersionDataset,
)
from simple_cnn.datasets.torch_model_dataset import TorchStateDictDataset

__all__ = [
    "AtomicJSONDataset", "CheckpointFileDataset",
    "Cifar10ArchiveDataset", "ImageFilesDataset", "ImageFolderDataset", "NewestJSONDataset", "NewestVersionDataset", "NumpyDataset",
    "TorchStateDictDataset"]
