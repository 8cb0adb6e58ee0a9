"""The sections of ``vggnet bench``, each vggnet against torchvision's VGG in one process: inference, a training
step, dense evaluation against multi-crop, and the data pipeline."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..base.files import atomic_write_bytes
from ..inference.folding import prepare
from ..inference.geometry import posteriors
from ..network.model import build
from .measure import Figure, alternate


def vgg_macs(arch: str, size: int = 224) -> float:
    from ..network.sizes import summarize

    with torch.device("meta"):
        model = build(arch)
    return summarize(model, size).gmacs * 1e9


def inference(
    arch: str, batch: int, device: torch.device, repeats: int, compile: bool = False, amp: bool = False
) -> list[Figure]:
    import torchvision

    tv = getattr(torchvision.models, arch)().eval().to(device)
    tv_cl = getattr(torchvision.models, arch)().eval().to(device, memory_format=torch.channels_last)
    ours_model = build(arch).eval()
    ours_model.load_state_dict(tv.state_dict())
    ours = prepare(ours_model, device)
    x = torch.randn(batch, 3, 224, 224, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run(model: torch.nn.Module, inp: torch.Tensor, mode: Callable = torch.no_grad, bf16: bool = False):
        def fn() -> None:
            with mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                model(inp)

        return fn

    plain = build(arch).eval().to(device)  # what a Python user gets: no prepare(), NCHW input, no_grad
    plain.load_state_dict(tv.state_dict())
    runs = {
        f"torchvision {arch}, batch {batch}": run(tv, x),
        f"torchvision {arch} + channels_last, batch {batch}": run(tv_cl, x_cl),
        f"vggnet {arch} as built (build().eval(), NCHW input), batch {batch}": run(plain, x),
        f"vggnet {arch} prepared (BN folded, inference_mode), batch {batch}": run(ours, x_cl, torch.inference_mode),
    }
    if compile:
        compiled = prepare(ours_model, device, compile=True)
        runs[f"vggnet {arch} + torch.compile, batch {batch}"] = run(compiled, x_cl, torch.inference_mode)
    if amp:
        runs[f"vggnet {arch} bf16 autocast, batch {batch}"] = run(ours, x_cl, torch.inference_mode, True)
    with torch.no_grad():  # all sides compute the same function
        torch.testing.assert_close(ours(x_cl), tv(x), rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(plain(x), tv(x), rtol=1e-3, atol=1e-3)
    return alternate(runs, batch, device, repeats, warmup=2 if compile else 1, macs_per_image=vgg_macs(arch))


def train_step_fn(
    model: torch.nn.Module, batch: int, device: torch.device, channels_last: bool, bf16: bool, fused: bool = False
) -> Callable[[], None]:
    """One SGD step (forward, backward, update) on a fixed random batch, as a closure. ``fused`` is vggnet's
    optimizer setting (as in ``vggnet train``); torchvision's reference scripts use PyTorch's default (foreach)."""
    model = model.train().to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4, fused=fused or None)
    x = torch.randn(batch, 3, 224, 224, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def training_step(
    arch: str,
    batch: int,
    device: torch.device,
    repeats: int,
    amp: bool = False,
    compile: bool = False,
    same_settings: bool = False,
) -> list[Figure]:
    """vggnet's training step against torchvision's: as torchvision is used by default (float32, NCHW), or with
    ``same_settings`` under the same bf16 autocast and channels_last, eager and (with ``compile``) compiled."""
    import torchvision

    def tv() -> torch.nn.Module:
        return getattr(torchvision.models, arch)()

    # same_settings: both sides under bf16 autocast, channels_last and the fused optimizer.
    bf16 = amp and same_settings
    label = " bf16 channels_last" if same_settings else ""
    name = f"{arch}{label} train step, batch {batch}"
    runs = {
        f"torchvision {name}": train_step_fn(tv(), batch, device, same_settings, bf16, same_settings),
        f"vggnet {name}": train_step_fn(build(arch), batch, device, True, bf16, True),
    }
    if amp and not same_settings:
        runs[f"vggnet {arch} train step bf16 autocast, batch {batch}"] = train_step_fn(
            build(arch), batch, device, True, True, True
        )
    if compile:
        if same_settings:
            runs[f"torchvision {name}, compiled"] = train_step_fn(
                torch.compile(tv().to(device)), batch, device, True, bf16, True
            )
        runs[f"vggnet {name}, compiled"] = train_step_fn(
            torch.compile(build(arch).to(device)), batch, device, True, bf16, True
        )
    return alternate(
        runs, batch, device, repeats, warmup=3 if compile else 1, macs_per_image=vgg_macs(arch), flop_factor=6.0
    )


def dense_vs_multicrop(arch: str, q: int, device: torch.device, repeats: int) -> list[Figure]:
    """One Q x Q image: the paper's dense evaluation (with flip) against 50-crop multi-crop on torchvision's model."""
    import torchvision

    tv = getattr(torchvision.models, arch)().eval().to(device, memory_format=torch.channels_last)
    ours_model = build(arch).eval()
    ours_model.load_state_dict(tv.state_dict())
    ours = prepare(ours_model, device)
    x = torch.randn(1, 3, q, q, device=device).contiguous(memory_format=torch.channels_last)
    crops_per_image = 50
    boxes = [
        (t, left)
        for t in torch.linspace(0, q - 224, 5).round().int().tolist()
        for left in torch.linspace(0, q - 224, 5).round().int().tolist()
    ]

    def tv_multicrop() -> None:
        with torch.inference_mode():
            for i in range(0, len(boxes), 5):
                crops = torch.cat([x[..., t : t + 224, u : u + 224] for t, u in boxes[i : i + 5]])
                tv(torch.cat([crops, crops.flip(3)]))

    def ours_dense() -> None:
        posteriors(ours, x, "dense", 224)

    macs = vgg_macs(arch)
    figures = alternate(
        {
            f"torchvision {arch} multi-crop (50 crops), Q={q}": tv_multicrop,
            f"vggnet {arch} dense (+ flip), Q={q}": ours_dense,
        },
        1,
        device,
        repeats,
    )
    figures[0].gflops = figures[0].images_per_s * crops_per_image * macs * 2 / 1e9
    dense_macs = vgg_macs(arch, q)
    figures[1].gflops = figures[1].images_per_s * 2 * dense_macs * 2 / 1e9
    return figures


def data_pipeline(folder: Path, count: int = 48, repeats: int = 3) -> list[Figure]:
    """Training transforms on ImageNet-sized JPEGs in one process (= one DataLoader worker)."""
    from torchvision.io import decode_jpeg, read_file
    from torchvision.transforms import v2

    from ..data.images import decode_image
    from ..data.transforms import paper_train_transform

    files = sorted(folder.glob("*.jpg"))
    if not files:
        files = make_jpegs(folder, count)
    ours_transform = paper_train_transform((256, 512), 224)
    tv_transform = v2.Compose(
        [
            v2.RandomResize(256, 513),
            v2.RandomCrop(224),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [1.0, 1.0, 1.0]),
        ]
    )

    def ours() -> None:
        for f in files:
            ours_transform(decode_image(f))

    def tv() -> None:
        for f in files:
            tv_transform(decode_jpeg(read_file(str(f))))

    return alternate(
        {
            "torchvision.transforms.v2 (decode_jpeg, resize, crop, flip)": tv,
            "vggnet paper pipeline (safe decode, jitter, crop, flip, colour shift)": ours,
        },
        len(files),
        torch.device("cpu"),
        repeats,
    )


def make_jpegs(folder: Path, count: int) -> list[Path]:
    """ImageNet-sized JPEGs (500 x 375 on average, smooth content) for the data-pipeline benchmark."""
    from torchvision.io import encode_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    paths = []
    for i in range(count):
        h, w = (375, 500) if i % 2 else (500, 375)
        low = torch.rand(1, 3, h // 25, w // 25, generator=g)
        img = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1) * 255
        img = (img + torch.rand(3, h, w, generator=g) * 40).clamp(0, 255).to(torch.uint8)
        path = folder / f"img{i:03d}.jpg"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29: encoders move to TorchCodec
            data = encode_jpeg(img, quality=90)
        atomic_write_bytes(path, data.numpy().tobytes())
        paths.append(path)
    return paths


def decode_for_bench(path: Path) -> torch.Tensor:
    from torchvision.transforms.v2.functional import center_crop

    from ..data.images import decode_image

    return center_crop(decode_image(path), [375, 375])
