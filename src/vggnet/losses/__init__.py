"""VGG as a fixed loss network: every VGG metric and loss the field trains with, equal to its reference package on
the same trunk weights, safe under training, and able to say how it computes.

Modules, low to high (each imports only those before it, and from the core below: ``model``, ``inference``,
``weights``, ``base``): ``taps.py`` (the trunk, tapped by Caffe name on any VGG vggnet loads, frozen, with max,
average or L2 pooling and optional checkpointing; :func:`load_trunk`), ``inputs.py`` (range checks, grey and
multichannel images, 2.5-D volumes, masks, patches), ``describe.py`` (:class:`Description`), ``metric.py``
(:class:`TapMetric`, what every metric shares), ``style.py`` (Gram matrices, :class:`StyleLoss`, total variation),
``perceptual.py`` (:class:`PerceptualLoss` with SRGAN, ESRGAN, Real-ESRGAN and Gatys presets), ``lpips.py``
(:class:`LPIPS` v0.1 and v0.0), ``dists.py`` (:class:`DISTS`), ``gatys.py`` (Gatys et al.'s normalised
network, :func:`normalize_filters`) and ``stylize.py`` (neural style transfer: :class:`NeuralStyle`, the objective
on one pass through the trunk, and ``stylize.stylize``, the optimisation ``vggnet stylize`` runs).
"""

from .describe import Description
from .dists import DISTS, dists_weights
from .gatys import mean_activations, normalize_filters
from .lpips import LPIPS, LPIPS_LAYERS, LPIPS_URL, lpips_layers
from .metric import TapMetric
from .perceptual import CRITERIA, PerceptualLoss
from .style import GATYS_STYLE, GRAMS, StyleLoss, TotalVariation, gram, total_variation
from .stylize import NeuralStyle
from .taps import POOLINGS, FeatureTaps, L2Pool, layer_weights, load_trunk

__all__ = [
    "CRITERIA",
    "DISTS",
    "Description",
    "FeatureTaps",
    "GATYS_STYLE",
    "GRAMS",
    "L2Pool",
    "LPIPS",
    "LPIPS_LAYERS",
    "LPIPS_URL",
    "NeuralStyle",
    "POOLINGS",
    "PerceptualLoss",
    "StyleLoss",
    "TapMetric",
    "TotalVariation",
    "dists_weights",
    "gram",
    "layer_weights",
    "load_trunk",
    "lpips_layers",
    "mean_activations",
    "normalize_filters",
    "total_variation",
]
