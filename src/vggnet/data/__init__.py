"""The data layer: what images a run and an evaluation read, and how they are brought to the net, by source.

``dataset`` (the one interface every training set follows, the settings that open one, the deterministic subset and
validation split), ``fashion_mnist`` (its idx files and the scaled variant), ``memory`` (sets held in memory,
augmented in batches on the device), ``folders`` (ImageNet-style folders), ``opening`` (what a run trains on, with its
normalisation and augmentation bound), ``sources`` (test-time images for evaluation and features), ``device`` (JPEGs
decoded and augmented on the GPU), ``images`` (reading image files within bounds, and safe decoding) and
``transforms`` (the paper's augmentation). It may import only vggnet's base modules (``base``): never the model,
training or anything above them."""

from .dataset import DATASETS
from .fashion_mnist import load_fashion_mnist
from .folders import ImageFolder
from .memory import InMemoryImages
from .opening import open_datasets
from .sources import Source, open_source

__all__ = ["DATASETS", "ImageFolder", "InMemoryImages", "Source", "load_fashion_mnist", "open_datasets", "open_source"]
