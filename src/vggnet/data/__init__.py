"""The data layer: what images a run and an evaluation read, and how they are brought to the net.

``datasets`` (Fashion-MNIST, image folders, the scaled Fashion-MNIST, the training/validation split and test-time
sources), ``device`` (JPEGs decoded and augmented on the GPU), ``images`` (safe decoding of any image file),
``transforms`` (the paper's augmentation and normalisation) and ``download`` (files fetched with timeouts). It may
import only vggnet's base modules (``files``, ``settings``, ``configs``): never the model, training or anything
above them.
"""

from .datasets import (
    DATASETS,
    ImageFolder,
    InMemoryImages,
    Source,
    load_fashion_mnist,
    open_datasets,
    open_source,
)

__all__ = ["DATASETS", "ImageFolder", "InMemoryImages", "Source", "load_fashion_mnist", "open_datasets", "open_source"]
