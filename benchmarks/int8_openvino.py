"""int8 through OpenVINO two ways: the QDQ file ``vggnet export --int8`` writes (onnxruntime's static quantisation,
which OpenVINO reads and runs as int8) against NNCF's own post-training quantisation of the float32 model, on the
same calibration images. Accuracy and agreement with float32 on held-out images for a trained model (``--weights``,
e.g. the main job's), and speed for it and for VGG-16 at 224 (random weights: speed does not depend on them), the
runs taking turns in one process, batch 1 and 8. NNCF is not one of vggnet's dependencies: ``pip install nncf``.

    python benchmarks/int8_openvino.py --weights runs/fashion_mnist/model.safetensors [--check 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vggnet import load_model  # noqa: E402
from vggnet.base.timing import take_turns  # noqa: E402
from vggnet.bench.engines import exported, models  # noqa: E402
from vggnet.data.sources import Source  # noqa: E402
from vggnet.engines.onnxruntime_engine import OnnxModel, read_onnx_metadata  # noqa: E402
from vggnet.engines.openvino_engine import OpenVinoModel  # noqa: E402
from vggnet.export import Int8Settings, check_agreement, export  # noqa: E402
from vggnet.export.metadata import write_ir_metadata  # noqa: E402
from vggnet.inference.loading import Loaded  # noqa: E402


def calibration_inputs(loaded: Loaded, source: Source, count: int) -> list:
    """The first ``count`` images of ``source`` as the model takes them, one per item (NNCF counts items)."""
    found = []
    for images, _ in source.batches():
        for x in loaded.inputs(images[: count - len(found)]):
            found.append(x[None].numpy())
        if len(found) >= count:
            break
    return found


def nncf_int8(float_onnx: Path, inputs: list, out: Path) -> Path:
    """NNCF's post-training quantisation (its defaults: the performance preset, per-channel weights) of the float32
    model, saved as OpenVINO IR with vggnet's metadata."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(float_onnx))
    quantised = nncf.quantize(model, nncf.Dataset(inputs), subset_size=len(inputs))
    meta = read_onnx_metadata(float_onnx)
    write_ir_metadata(quantised, {**meta, "precision": "int8 nncf"})
    ov.save_model(quantised, str(out), compress_to_fp16=False)
    return out


def accuracy(weights: str, work: Path, calibration: int, check: int) -> list[str]:
    """Float32, QDQ int8 (onnxruntime, as export checked it, and OpenVINO) and NNCF int8 (OpenVINO) on ``check``
    held-out test images."""
    loaded = load_model(weights, engine="torch")
    settings = Int8Settings(calibration=calibration, check=check).with_sources(loaded.model.in_channels)
    with contextlib.redirect_stdout(io.StringIO()):
        results = export(loaded, work / "trained", ("onnx",), int8=settings)
    inputs = calibration_inputs(loaded, settings.calibrate_on, calibration)
    nncf_path = nncf_int8(Path(results["onnx"]["path"]), inputs, work / "nncf.xml")
    found = {"QDQ int8 through onnxruntime": results["int8"]}
    for name, runner in (
        ("QDQ int8 through OpenVINO", OpenVinoModel(results["int8"]["path"])),
        ("NNCF int8 through OpenVINO", OpenVinoModel(nncf_path)),
    ):
        found[name] = check_agreement(loaded, runner, settings.check_on, check, loaded.default_scale)
    rows = ["| model | images | top-1 accuracy | float32's | change | agreement with float32 |", "|---" * 6 + "|"]
    for name, f in found.items():
        change = 100 * (f["int8_accuracy"] - f["float_accuracy"])
        rows.append(
            f"| {name} | {f['images']} | {100 * f['int8_accuracy']:.2f} % | "
            f"{100 * f['float_accuracy']:.2f} % | {change:+.2f} | {100 * f['agreement']:.2f} % |"
        )
    return rows


def speed(loaded: Loaded, side: int, work: Path, batches: list[int], repeats: int) -> dict[str, float]:
    """images/s of OpenVINO float32, QDQ int8 and NNCF int8, and onnxruntime's QDQ int8, taking turns."""
    files = exported(loaded, work)
    generator = torch.Generator().manual_seed(0)
    shape = (1, loaded.model.in_channels, side, side)
    images = [torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8) for _ in range(8)]
    inputs = [loaded.inputs(image).numpy() for image in images]
    nncf_path = nncf_int8(files["float32"], inputs, work / "nncf.xml")
    runners = {
        "OpenVINO f32": OpenVinoModel(files["float32"]),
        "OpenVINO QDQ int8": OpenVinoModel(files["int8"]),
        "OpenVINO NNCF int8": OpenVinoModel(nncf_path),
        "onnxruntime QDQ int8": OnnxModel(files["int8"]),
    }
    figures = {}
    for batch in batches:
        x = torch.randn(batch, loaded.model.in_channels, loaded.crop, loaded.crop)
        rates = take_turns(
            {name: (lambda r=runner, x=x: r(x)) for name, runner in runners.items()}, batch, repeats, least=0.2
        )
        figures.update({f"batch {batch}: {name}": rate for name, rate in rates.items()})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="a trained vggnet model on Fashion-MNIST")
    parser.add_argument("--calibration", type=int, default=500, help="calibration images (export's default)")
    parser.add_argument("--check", type=int, default=2000, help="held-out test images")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        print("\n".join(accuracy(args.weights, Path(work), args.calibration, args.check)), "\n", flush=True)
        print("| model and run | images/s | vs OpenVINO f32 |\n|---|---|---|")
        for label, (loaded, side) in models().items():
            figures = speed(loaded, side, Path(work) / label.split()[0], args.batch, args.repeats)
            for name, rate in figures.items():
                base = figures[name.split(":")[0] + ": OpenVINO f32"]
                print(f"| {label}, {name} | {rate:.2f} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
