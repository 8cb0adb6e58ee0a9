"""Sizes and costs: the paper's Table 1 side by side, parameters, multiply-accumulates and activation memory."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..base.configs import CONFIGS, LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE, Layer
from ..base.settings import AT_LEAST_ONE, Range, setting
from ..formats import identify, suffixes
from ..network.fields import stacks
from ..network.model import VGG, build
from ..network.sizes import layer_table, summarize
from .command import Command, parsed


@dataclass
class InfoSettings:
    """``vggnet info``: Table 1 with parameters, GMACs and memory, or one architecture layer by layer."""

    arch: str | None = setting(
        None,
        "an architecture (vgg16, D, vgg19_bn ...), or a weights file of any kind to describe (as vggnet convert "
        "does, without converting); omit for the whole family",
        positional=True,
    )
    size: int = setting(224, "input image side", Range(32))
    num_classes: int = setting(1000, "classes of fc8", AT_LEAST_ONE)
    weights: str | None = setting(
        None, "a weights file to describe, whose architecture the positional argument gives where the file cannot"
    )
    normalize: str = setting(
        "auto",
        "with a file: the input its weights expect where the file does not say it",
        choices=("auto", "caffe", "vggface", "imagenet", "tf"),
    )
    classes: str | None = setting(None, "with a file: a text file of its class names, one per line")
    json: bool = setting(False, "an architecture's layers, fields and stacks as JSON")

    def file(self) -> str | None:
        """The weights file to describe, if any: ``--weights``, or the positional argument where it names one."""
        if self.weights:
            return self.weights
        text = self.arch or ""
        return text if "://" in text or text.lower().endswith(suffixes()) or Path(text).is_file() else None


def _describe(item: Layer) -> str:
    if item == "M":
        return "maxpool"
    if item == "LRN":
        return "LRN"
    width, kernel = (item, 3) if isinstance(item, int) else item
    return f"conv{kernel}-{width}"


def table1() -> str:
    """The paper's Table 1: the six configurations side by side."""
    names = list(CONFIGS)
    blocks: dict[str, list[list[str]]] = {}
    for name, config in CONFIGS.items():
        current: list[list[str]] = [[]]
        for item in config:
            if item == "M":
                current.append([])
            else:
                current[-1].append(_describe(item))
        blocks[name] = current[:-1]
    weight_layers = {n: sum(not isinstance(i, str) for i in c) + 3 for n, c in CONFIGS.items()}
    col = 13
    line = "-" * (col * (len(names) + 1))
    out = [
        "ConvNet configuration (Table 1)",
        line,
        "".ljust(col) + "".join(n.ljust(col) for n in names),
        "".ljust(col) + "".join(f"{weight_layers[n]} layers".ljust(col) for n in names),
        line,
        "input (224 x 224 RGB image)",
        line,
    ]
    for b in range(5):
        depth = max(len(blocks[n][b]) for n in names)
        for row in range(depth):
            label = f"block {b + 1}" if row == 0 else ""
            cells = [(blocks[n][b][row] if row < len(blocks[n][b]) else "") for n in names]
            out.append(label.ljust(col) + "".join(c.ljust(col) for c in cells))
        out.append("maxpool")
        out.append(line)
    out += ["FC-4096", "FC-4096", "FC-1000", "soft-max", line]
    return "\n".join(line.rstrip() for line in out)


def family_report(size: int = 224) -> str:
    """Table 1 and, per configuration, exact parameters, GMACs and activation memory per image."""
    lines = [table1(), "", f"{'config':<8}{'name':<14}{'parameters':>15}{'GMACs':>9}{'activations':>14}"]
    for letter in CONFIGS:
        for bn in (False, True):
            with torch.device("meta"):
                model = build(letter, batch_norm=bn)
            s = summarize(model, size)
            lines.append(f"{letter:<8}{s.name:<14}{s.params:>15,}{s.gmacs:>9.3f}{s.activation_mib:>10.1f} MiB")
    lines.append(
        f"GMACs and activations for one {size}x{size} image; activations: float32 outputs of every layer\n"
        "but the in-place ReLU and dropout, in a forward pass.\n" + LRN_NOTE
    )
    return "\n".join(lines)


LRN_NOTE = (
    f"LRN (A-LRN): AlexNet's, n = {LRN_SIZE}, alpha = {LRN_ALPHA:g}, beta = {LRN_BETA:g}, k = {LRN_K:g}, in Caffe's "
    "pixel units (0-255 minus the mean) as the paper computed it; alpha is rescaled to the units of the model's own "
    "input normalisation (x 255^2 for [0, 1] images minus the mean)."
)


def layer_report(model: VGG, size: int = 224) -> str:
    """Layer by layer: output, parameters, MACs and receptive field (field, jump, effective padding), then the
    paper's argument for each block's stack of 3x3 layers in numbers."""
    rows = layer_table(model, size)
    fields = {f.name: f for f in model.receptive_fields(size)}
    head = f"{'layer':<10}{'output':>20}{'parameters':>14}{'MACs':>16}{'field':>8}{'jump':>6}{'padding':>9}"
    lines = [f"{model.arch or 'custom'} at {size}x{size}", head]
    last = None
    for r in rows:
        last = fields.get(r.name, last)  # ReLU, dropout: their layer's field
        where = f"{last.field:>8}{last.jump:>6}{last.padding:>9}" if last else ""
        lines.append(f"{r.name:<10}{' x '.join(map(str, r.shape)):>20}{r.params:>14,}{r.macs:>16,}{where}")
    total_params = sum(p.numel() for p in model.parameters())
    lines.append(f"{'total':<10}{'':>20}{total_params:>14,}{sum(r.macs for r in rows):>16,}")
    lines.append(
        "field: the side of the square of input pixels one unit sees; jump: input pixels between neighbouring "
        "units;\npadding: how far the first unit's field starts before the image (fc6-fc8 in their dense form)."
    )
    lines += ["", "Stacks of 3x3 layers against the single layer of the same field (Sect. 2.3), C channels in and out:"]
    for st in stacks(model.effective_config()):
        lines.append(
            f"  block {st.block}: {st.depth} x 3x3 at C = {st.width} sees {st.field} x {st.field}: "
            f"{st.depth * 9}C^2 = {st.stack_weights:,} weights against {st.field**2}C^2 = {st.single_weights:,} "
            f"for one {st.field}x{st.field} layer ({100 * st.saving:.0f}% fewer)"
        )
    if model.has_lrn:
        lines.append(f"{LRN_NOTE} This model: 1 input unit = {model.input_scale:g} pixel levels.")
    return "\n".join(lines)


def layer_json(model: VGG, size: int = 224) -> dict:
    """The layer report as data: every layer's output, parameters, MACs and field; the stacks."""
    fields = {f.name: f for f in model.receptive_fields(size)}
    layers = []
    for r in layer_table(model, size):
        entry = {"name": r.name, "output": list(r.shape), "parameters": r.params, "macs": r.macs}
        if (f := fields.get(r.name)) is not None:
            entry.update(field=f.field, jump=f.jump, padding=f.padding)
        layers.append(entry)
    found = [{**asdict(st), "saving": round(st.saving, 4)} for st in stacks(model.effective_config())]
    return {"arch": model.arch, "size": size, "layers": layers, "stacks": found}


def run_info(s: InfoSettings) -> str:
    """``vggnet info``: a weights file described, one architecture layer by layer, or the family."""
    if s.file() is not None and identify(s.file()).exported:
        return exported_report(s.file())
    if s.file() is not None:
        from .convert import open_file, report

        return report(*open_file(s.file(), s.arch if s.weights else None, s.normalize, s.classes))
    if s.arch is None:
        return family_report(s.size)
    with torch.device("meta"):
        model = build(s.arch, num_classes=s.num_classes)
    return json.dumps(layer_json(model, s.size), indent=1) if s.json else layer_report(model, s.size)


def exported_report(path: str) -> str:
    """What a model vggnet exported says about itself (its metadata), read without running it."""
    from ..engines.select import exported_metadata

    if not Path(path).is_file():
        raise ValueError(f"no such exported model: {path}")
    meta = exported_metadata(path)
    classes = list(meta["classes"])
    shown = ", ".join(map(str, classes[:8])) + (f" ... ({len(classes)} in all)" if len(classes) > 8 else "")
    scale = f"shorter side resized to {meta['scale']}, then " if meta.get("scale") else ""
    return "\n".join(
        [
            f"file: {path}",
            f"format: a model vggnet exported ({'OpenVINO IR' if path.endswith('.xml') else 'ONNX'}): it runs through "
            "an engine (vggnet eval, predict, serve --weights it), it is not weights to train from",
            f"network: {meta['num_classes']} classes, {meta['in_channels']} input channel(s), "
            f"{meta.get('precision', 'float32')}; exported from {meta.get('source', 'weights it does not name')}",
            f"classes: {shown}",
            f"input: {scale}a centre crop of {meta['crop']}, normalised with mean {meta['mean']} and std "
            f"{meta['std']} (vggnet's commands do this)",
        ]
    )


def cmd_info(args: argparse.Namespace) -> int:
    print(run_info(parsed(InfoSettings, args)))
    return 0


COMMAND = Command(
    "info", "Table 1, parameters, GMACs and memory; or one architecture layer by layer", cmd_info, (InfoSettings,)
)
