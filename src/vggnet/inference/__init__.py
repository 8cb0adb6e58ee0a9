"""A trained VGG at test time. ``loading`` (a model from a checkpoint, a weights file of any origin or an exported
model, with what is needed to feed it: :class:`Loaded`, :func:`load_model`, and a command's :class:`ModelChoice`),
``folding`` (the fast form: batch norms folded, channels_last, :func:`prepare`), ``geometry`` (the paper's test
geometry: images rescaled to Q, the centre window, crops, and the protocols' posteriors), and its uses: ``protocols``
(the paper's evaluation, single- and multi-scale, dense and multi-crop, ensembles: :func:`evaluate`),
``descriptors`` (Appendix B's image descriptors and their files: :func:`extract_features`) and ``gradcam``
(:func:`grad_cam`, where a class's evidence lies).

It imports the network, the data layer (test images, their normalisation) and the engines of exported models; the
commands, the service and the losses import it.
"""

from .descriptors import FeatureSet, extract_features, load_features, save_features
from .folding import fuse_batch_norm, prepare
from .geometry import PROTOCOLS, centre_window, posteriors, rescale
from .gradcam import grad_cam
from .loading import Loaded, ModelChoice, load_model
from .protocols import evaluate, markdown

__all__ = [
    "FeatureSet",
    "extract_features",
    "load_features",
    "save_features",
    "fuse_batch_norm",
    "prepare",
    "PROTOCOLS",
    "centre_window",
    "posteriors",
    "rescale",
    "grad_cam",
    "Loaded",
    "ModelChoice",
    "load_model",
    "evaluate",
    "markdown",
]
