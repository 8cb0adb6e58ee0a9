"""The learner's view of a 224 x 224 image through VGG-16, against one forward pass of the same model: the first
view (POST /inside/look, in process: decoding, the pass with its taps, Grad-CAM's backward through the rest of the
net, every map a PNG, the JSON) must come within 2x a forward pass (issue 32). Alternated, median of --repeats.

    python benchmarks/inside.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    import numpy as np
    import torch
    from fastapi.testclient import TestClient
    from PIL import Image

    import vggnet
    from vggnet.base.hardware import cpu_name
    from vggnet.inside.app import create_inside_app, inside_models
    from vggnet.inside.settings import InsideSettings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    folder = ROOT / "runs" / "bench_inside"
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "vgg16.safetensors"
    if not weights.exists():
        vggnet.save_weights(vggnet.vgg16(), weights, metadata={"crop": "224", "scale": "224"})
    settings = InsideSettings()
    models = inside_models(vggnet.inference.loading.ModelChoice(weights=[str(weights)]), settings)
    model = models[0].loaded.model
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(buffer, "PNG")
    image, x = buffer.getvalue(), torch.randn(1, 3, 224, 224)
    times: dict[str, list[float]] = {"forward pass (inference mode)": [], "first view (POST /inside/look)": []}
    with TestClient(create_inside_app(models, settings)) as client:

        def forward() -> None:
            with torch.inference_mode():
                model(x)

        def view() -> None:
            assert client.post("/inside/look", content=image).status_code == 200

        runs = dict(zip(times, (forward, view)))
        for fn in runs.values():
            fn()
        for _ in range(args.repeats):
            for name, fn in runs.items():
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}")
    medians = {name: statistics.median(t) for name, t in times.items()}
    reference = medians["forward pass (inference mode)"]
    print("| VGG-16, 224 x 224 | seconds | x forward pass |\n|---|---|---|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.3f} | {seconds / reference:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
