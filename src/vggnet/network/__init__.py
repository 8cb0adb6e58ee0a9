"""The network: what a VGG is and what it holds. ``model`` (the :class:`VGG` module, torchvision's layout, the dense
form and named taps; ``build``), ``layers`` (the trunk's layers, LRN in Caffe's units, initialisation and the
paper's pre-initialisation), ``anatomy`` (a net described: in words, its receptive fields, the smallest input, its
maps' sizes), ``fields`` (receptive fields from the layers), ``sizes`` (shapes, parameters and MACs per layer) and
``weights`` (reading and writing a VGG's weights, of every origin, and putting them into a model).

It imports vggnet's base and the readers of other frameworks' files (``formats``) alone: never the data, nor
anything that uses a network.
"""

from .model import VGG, build

__all__ = ["VGG", "build"]
