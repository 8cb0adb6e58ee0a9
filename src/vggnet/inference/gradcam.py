"""Grad-CAM (Selvaraju et al. 2017, shown on VGG-16): where in the image a class's evidence lies."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..network.model import VGG


def grad_cam(
    model: VGG, images: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None = None, layer: str = "relu5_3"
) -> torch.Tensor:
    """One map per image, N x H x W at the input's resolution, in [0, 1].

    The ReLU of the channel-weighted sum of ``layer``'s activations, each channel weighted by the spatial mean of the
    gradient of the ``target`` class's score (the top class where ``target`` is None), bilinearly upsampled to the
    image, divided by its maximum. ``images`` are normalised as the model takes them. Nets without ``relu5_3``
    (VGG-11, VGG-13) use their last ReLU before pool5 when ``layer`` is left at its default. The model runs in
    inference mode (batch-norm statistics, no dropout) and is left in the mode it was in.
    """
    if torch.is_inference_mode_enabled():
        raise ValueError("grad_cam needs gradients: call it outside torch.inference_mode()")
    model.check_input(images)
    if layer == "relu5_3" and layer not in model.layer_names:
        layer = model.feature_info[-1]["name"]
    if model.layer_index(layer) >= len(model.features):
        raise ValueError(f"Grad-CAM needs a convolutional layer's map; {layer} is in the classifier head")
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            with torch.no_grad():
                acts = model.extract(images, layer)[layer]
            acts.requires_grad_(True)
            scores = model.forward_from(acts, layer)
            chosen = _targets(target, scores)
            (grads,) = torch.autograd.grad(scores.gather(1, chosen[:, None]).sum(), acts)
    finally:
        model.train(was_training)
    return cam_of(acts.detach(), grads, images.shape[-2:])


def cam_of(acts: torch.Tensor, grads: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Grad-CAM's map from a layer's activations and the gradients of a class score at them (N x C x h x w each):
    N x H x W at ``size``, in [0, 1]."""
    weights = grads.mean((2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)[:, 0].clamp_min(0)
    top = cam.flatten(1).max(1).values.view(-1, 1, 1)
    return torch.where(top > 0, cam / top.clamp_min(1e-12), torch.zeros_like(cam))


def grad_cam_of_centre(
    model: VGG, x: torch.Tensor, crop: int, target: int, layer: str = "relu5_3", pad: int = 0
) -> torch.Tensor:
    """Grad-CAM of the centre ``crop`` window of one image ``x`` (1 x C x H x W, at its test scale), placed where the
    window lies on an H x W map of zeros, less ``pad`` pixels at each edge (the zeros added around the image in
    validation are not part of it): the map of a model that looks at the centre crop, as in its validation."""
    from .geometry import centre_window

    (h, w), top, left = x.shape[-2:], (x.shape[-2] - crop) // 2, (x.shape[-1] - crop) // 2
    heat = torch.zeros(h, w, device=x.device)
    heat[top : top + crop, left : left + crop] = grad_cam(model, centre_window(x, crop), target, layer)[0]
    return heat[pad : h - pad, pad : w - pad]


def _targets(target: int | Sequence[int] | torch.Tensor | None, scores: torch.Tensor) -> torch.Tensor:
    n, classes = scores.shape
    if target is None:
        return scores.argmax(1)
    chosen = torch.as_tensor(target, device=scores.device).long().flatten()
    if chosen.numel() == 1:
        chosen = chosen.expand(n)
    if chosen.numel() != n:
        raise ValueError(f"give one target class, or one per image ({n}); got {chosen.numel()}")
    if chosen.min() < 0 or chosen.max() >= classes:
        raise ValueError(f"target classes must be in [0, {classes}), got {chosen.tolist()}")
    return chosen
