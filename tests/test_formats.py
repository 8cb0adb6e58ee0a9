"""The VGG files of other frameworks: the authors' Caffe models, the classic PyTorch ports, and (test_keras.py)
Keras's. Each file is written by another writer than vggnet's reader (protoc's messages, bytes built by hand), and
each loaded net is checked against a torchvision-layout net fed the file's own input by hand: BGR, 0-255, minus the
mean pixel."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from caffe_files import blob_bytes, compile_messages, deploy_layers, field, varint, write_caffemodel
from torch import nn

import vggnet
from vggnet.base.configs import CONFIGS
from vggnet.base.normalization import CAFFE_MEAN_PIXEL, VGGFACE_MEAN_PIXEL
from vggnet.cli import main
from vggnet.data.transforms import normalize
from vggnet.inference.loading import load_model
from vggnet.losses import PerceptualLoss
from vggnet.network.weights import read_weights


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    return compile_messages(tmp_path_factory.mktemp("protoc"))


class Reference(nn.Module):
    """torchvision's VGG, written out: features (conv, ReLU, LRN, ceil-mode pools at torchvision's indices),
    an adaptive average pool, the classifier at classifier.0/.3/.6."""

    def __init__(self, config: list, classes: int = 10, pool: int = 2, fc: int = 32, ceil: bool = True) -> None:
        super().__init__()
        layers, channels = [], 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil))
            elif item == "LRN":  # Caffe's LRN by hand: its alpha (5e-4) divided by n, on pixel units
                layers.append(nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
            else:
                out, k = (item, 3) if isinstance(item, int) else item
                layers += [nn.Conv2d(channels, out, k, padding=k // 2), nn.ReLU()]
                channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(pool)
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool * pool, fc), nn.ReLU(), nn.Dropout(), nn.Linear(fc, fc), nn.ReLU(),
            nn.Dropout(), nn.Linear(fc, classes),
        )  # fmt: skip
        for m in self.modules():  # He's scale: activations of order one through every layer
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                nn.init.normal_(m.weight, 0, (2 / fan_in) ** 0.5 / (100 if m is layers[0] else 1))  # pixel units in
                nn.init.normal_(m.bias, 0, 0.01)
        self.eval()

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def narrow(letter: str, width: float = 1 / 8) -> list:
    return [
        i if isinstance(i, str) else (max(1, round(i * width)) if isinstance(i, int) else (round(i[0] * width), 1))
        for i in CONFIGS[letter]
    ]


def bgr_pixels(x: torch.Tensor, mean=CAFFE_MEAN_PIXEL) -> torch.Tensor:
    """RGB [0, 1] images as the authors' Caffe nets take them."""
    return x.flip(1) * 255 - torch.tensor(mean).view(1, 3, 1, 1)


def ours(loaded, x: torch.Tensor) -> torch.Tensor:
    """vggnet's output for RGB [0, 1] images, normalised as the loaded file says."""
    with torch.no_grad():
        return loaded.model(normalize((x * 255).round().to(torch.uint8), loaded.mean, loaded.std))


def images(n: int = 2, side: int = 72) -> torch.Tensor:
    torch.manual_seed(1)
    return (torch.rand(n, 3, side, side) * 255).round() / 255


@pytest.mark.parametrize("generation", ["v1", "v2"])
def test_caffe_files_equal_a_torchvision_net_fed_bgr_pixels_by_hand(pb, tmp_path, generation):
    torch.manual_seed(0)
    ref = Reference(CONFIGS["D"])  # Table 1's widths: the configuration is D by its layers and widths
    path = write_caffemodel(
        pb, tmp_path / "VGG_ILSVRC_16_layers.caffemodel", deploy_layers(CONFIGS["D"], ref.state_dict()), generation
    )
    loaded = load_model(path)
    assert loaded.model.describe() == "VGG-16 (net D)" and loaded.model.ceil_mode  # Caffe's pools round up
    assert loaded.model.arch == "vgg16" and loaded.model.num_classes == 10 and loaded.model.pool_size == 2
    x = images()  # 72 x 72: pool5 is 3 x 3 rounding up, 2 x 2 rounding down
    with torch.no_grad():
        expected = ref(bgr_pixels(x))
    torch.testing.assert_close(ours(loaded, x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    found = read_weights(path)
    assert found.normalization.channel_order == "BGR" and found.normalization.pixel_range == 255
    assert list(found.normalization.mean) == list(CAFFE_MEAN_PIXEL)
    assert ("V1 layers" if generation == "v1" else "layer messages") in found.format


@pytest.mark.parametrize("letter", ["A", "A-LRN", "B", "C", "D", "E"])
def test_caffe_files_say_their_configuration(pb, tmp_path, letter):
    torch.manual_seed(0)
    config = narrow(letter)
    ref = Reference(config)
    layers = deploy_layers(config, ref.state_dict())
    path = write_caffemodel(pb, tmp_path / f"{letter}.caffemodel", layers, "v2")
    loaded = load_model(path)
    assert loaded.model.describe().startswith(
        f"VGG-{11 if letter.startswith('A') else 13 if letter == 'B' else 16 if letter in 'CD' else 19} (net {letter})"
    )
    x = images(1)
    with torch.no_grad():
        expected = ref(bgr_pixels(x))
    torch.testing.assert_close(ours(loaded, x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_vgg_face_caffe_model_has_its_mean_and_names_beside_it(pb, tmp_path):
    torch.manual_seed(0)
    config = narrow("D")
    ref = Reference(config, classes=2622, pool=1)
    path = write_caffemodel(pb, tmp_path / "VGG_FACE.caffemodel", deploy_layers(config, ref.state_dict()), "v1")
    (tmp_path / "names.txt").write_text("".join(f"Person_{i}\n" for i in range(2622)))
    loaded = load_model(path)
    assert loaded.model.num_classes == 2622 and loaded.classes[:2] == ["Person_0", "Person_1"]
    x = images(1)
    with torch.no_grad():
        expected = ref(bgr_pixels(x, VGGFACE_MEAN_PIXEL))
    torch.testing.assert_close(ours(loaded, x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_a_file_of_hand_built_bytes_reads_packed_and_unpacked_floats(tmp_path):
    """No protobuf on the writing side: the wire format's rules by hand (tags, varints, lengths, fixed32)."""
    torch.manual_seed(0)
    ref = Reference(narrow("A", 1 / 16), classes=3, pool=1, fc=4)
    state = ref.state_dict()
    for packed in (True, False):
        layers = b""
        for name, kind, blobs, _ in deploy_layers(narrow("A", 1 / 16), state):
            body = field(1, name.encode()) + field(2, kind.encode())
            body += b"".join(field(7, blob_bytes(b.numpy(), packed)) for b in blobs)
            if kind == "Convolution":  # convolution_param: pad 1, kernel_size 3
                body += field(106, field(3, 1, "varint") + field(4, 3, "varint"))
            if kind == "Pooling":  # pooling_param: MAX, kernel_size 2, stride 2
                body += field(121, field(2, 2, "varint") + field(3, 2, "varint"))
            layers += field(100, body)  # NetParameter.layer
        path = tmp_path / f"hand_{packed}.caffemodel"
        path.write_bytes(field(1, b"handmade") + layers)
        loaded = load_model(path)
        for key, value in state.items():
            mine = loaded.model.state_dict()[key]
            torch.testing.assert_close(mine.flip(1) if key == "features.0.weight" else mine, value)  # BGR -> RGB


def test_protoc_decode_raw_sees_the_layers_the_reader_reads(pb, tmp_path):
    """An independent decoder (protoc --decode_raw) reads the same V1 layers: field 2 of NetParameter, each with its
    name in field 4 and LayerType in field 5."""
    from vggnet.formats import caffe

    ref = Reference(narrow("A", 1 / 16), classes=3, pool=1, fc=4)
    path = write_caffemodel(pb, tmp_path / "a.caffemodel", deploy_layers(narrow("A", 1 / 16), ref.state_dict()), "v1")
    raw = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "--decode_raw"],
        input=path.read_bytes(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    top = re.findall(r"^2 \{\n(.*?)^\}", raw, flags=re.M | re.S)
    decoded = [
        (re.search(r'^  4: "(.*)"', t, re.M).group(1), int(re.search(r"^  5: (\d+)", t, re.M).group(1))) for t in top
    ]
    net = caffe.messages()["NetParameter"].FromString(path.read_bytes())
    assert decoded == [(m.name, m.type) for m in net.layers] and len(decoded) == len(
        deploy_layers(narrow("A", 1 / 16), ref.state_dict())
    )
    assert [(n, caffe.V1_TYPES[t]) for n, t in decoded] == [
        (n, k) for n, k, *_ in deploy_layers(narrow("A", 1 / 16), ref.state_dict())
    ]


def alexnet_layers() -> list[tuple]:
    torch.manual_seed(0)
    shapes = [
        ("conv1", (8, 3, 11, 11)),
        ("conv2", (8, 8, 5, 5)),
        ("conv3", (8, 8, 3, 3)),
        ("fc6", (4, 8)),
        ("fc8", (3, 4)),
    ]
    return [("data", "Data", [], {})] + [
        (n, "Convolution" if n.startswith("conv") else "InnerProduct", [torch.randn(s), torch.randn(s[0])],
         {"num_output": s[0], "kernel": s[-1]} if n.startswith("conv") else {"num_output": s[0]})
        for n, s in shapes
    ]  # fmt: skip


def test_bad_caffe_files_are_one_sentence_and_nothing_is_written(pb, tmp_path, capsys):
    torch.manual_seed(0)
    config = narrow("A", 1 / 16)
    good = write_caffemodel(
        pb, tmp_path / "good.caffemodel", deploy_layers(config, Reference(config, 3, 1, 4).state_dict())
    )
    data = good.read_bytes()
    cases = {}
    (tmp_path / "truncated.caffemodel").write_bytes(data[: len(data) // 2])
    cases["truncated.caffemodel"] = r"truncated or not a \.caffemodel|truncated or damaged|ends after"
    write_caffemodel(pb, tmp_path / "alexnet.caffemodel", alexnet_layers())
    cases["alexnet.caffemodel"] = r"is not a VGG: its layers with weights are conv1 \(Convolution 8x3x11x11\), conv2"
    resnet = [("conv1_1", "Convolution", [torch.randn(4, 3, 3, 3), torch.randn(4)], {"num_output": 4, "kernel": 3}),
              ("bn_conv1", "BatchNorm", [torch.randn(4), torch.randn(4), torch.ones(1)], {})]  # fmt: skip
    write_caffemodel(pb, tmp_path / "resnet.caffemodel", resnet, "v2")
    cases["resnet.caffemodel"] = r"not a VGG: .*bn_conv1 \(BatchNorm"
    claims = deploy_layers(config, Reference(config, 1000, 1, 4).state_dict())
    claims = [(n, k, b, {**p, "num_output": 2622} if n == "fc8" else p) for n, k, b, p in claims]
    write_caffemodel(pb, tmp_path / "claims.caffemodel", claims, "v2")
    cases["claims.caffemodel"] = r"fc8 declares 2,622 outputs but its weights hold 1,000"
    lrn = deploy_layers(narrow("A-LRN", 1 / 16), Reference(narrow("A-LRN", 1 / 16), 3, 1, 4).state_dict())
    lrn = [(n, k, b, {**p, "alpha": 1e-4} if k == "LRN" else p) for n, k, b, p in lrn]  # Caffe's AlexNet alpha
    write_caffemodel(pb, tmp_path / "lrn.caffemodel", lrn, "v2")
    cases["lrn.caffemodel"] = r"LRN layer norm1 computes a / \(2 \+ 2e-05 x the sum of 5 squares\)"
    cut = [
        layer
        for layer in deploy_layers(config, Reference(config, 3, 1, 4).state_dict())
        if layer[0] not in ("fc6", "fc7", "fc8", "prob")
    ]
    write_caffemodel(pb, tmp_path / "cut.caffemodel", cut)
    cases["cut.caffemodel"] = r"ends after conv5_2: .*truncated, or holds part of a net"
    (tmp_path / "noise.caffemodel").write_bytes(b"\xff" * 64)
    cases["noise.caffemodel"] = r"truncated or not a \.caffemodel"
    for name, pattern in cases.items():
        out = tmp_path / f"{name}.safetensors"
        assert main(["convert", str(tmp_path / name), "--out", str(out)]) == 2, name
        err = capsys.readouterr().err
        assert re.search(pattern, err) and err.count("\n") == 1 and "Traceback" not in err, (name, err)
        assert not out.exists()


def test_convert_prints_what_it_found_and_writes_a_file_for_rgb_images(pb, tmp_path, capsys):
    torch.manual_seed(0)
    config = narrow("D")
    ref = Reference(config)
    path = write_caffemodel(pb, tmp_path / "VGG_ILSVRC_16_layers.caffemodel", deploy_layers(config, ref.state_dict()))
    (tmp_path / "classes.txt").write_text("".join(f"thing {i}\n" for i in range(10)))
    out = tmp_path / "vgg16.safetensors"
    assert main(["convert", str(path), "--out", str(out), "--classes", str(tmp_path / "classes.txt")]) == 0
    text = capsys.readouterr().out
    assert "format: Caffe NetParameter 'VGG_test', V1 layers" in text
    assert "network: VGG-16 (net D)" in text and "classes: 10 named (thing 0, thing 1, thing 2, ...)" in text
    assert "mean [103.939, 116.779, 123.68], std [1.0, 1.0, 1.0], BGR 0-255" in text
    assert "conv1_1's input channels reversed" in text
    rows = re.findall(r"^  (\S+)\s+(\S+)\s+-> (\S+)\s+(\S+)$", text, re.M)
    assert [r[1] for r in rows] == [
        n for n in vggnet.build(config, num_classes=10).layer_names if n.startswith(("conv", "fc"))
    ]
    assert rows[0] == ("conv1_1", "conv1_1", "features.0", f"{config[0]}x3x3x3") and rows[-1][2] == "classifier.6"
    again = load_model(out)  # a vggnet file: RGB [0, 1] and the same net
    assert again.classes[3] == "thing 3" and again.model.ceil_mode
    x = images(1)
    with torch.no_grad():
        expected = ref(bgr_pixels(x))
    torch.testing.assert_close(ours(again, x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert main(["info", str(path)]) == 0  # the same, without converting
    described = capsys.readouterr().out
    for line in text.splitlines():
        if not line.startswith(("classes:", "wrote")):
            assert line in described


def test_load_weights_sets_the_normalisation_the_losses_and_timm_read(pb, tmp_path):
    torch.manual_seed(0)
    config = narrow("D")
    ref = Reference(config)
    path = write_caffemodel(pb, tmp_path / "d.caffemodel", deploy_layers(config, ref.state_dict()), "v2")
    model = vggnet.build(config, num_classes=10, pool_size=2, fc_width=32, ceil_mode=True)  # Caffe's rounding
    vggnet.load_weights(model, path)
    x = images(1)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(model.normalization(x)), ref(bgr_pixels(x)), rtol=1e-4, atol=1e-5)
    assert model.pretrained_cfg["std"] == pytest.approx((1 / 255,) * 3)
    loss = PerceptualLoss(model, layers=["relu2_2"])
    y = images(1, 64)
    with torch.no_grad():
        taps = ref.features[:9]  # conv1_1 ... relu2_2
        expected = torch.mean((taps(bgr_pixels(x[..., :64, :64])) - taps(bgr_pixels(y))) ** 2)
    torch.testing.assert_close(loss(x[..., :64, :64], y), expected, rtol=1e-4, atol=1e-6)


def test_jcjohnson_and_caffe_named_ports_load_with_the_caffe_input_said(tmp_path, capsys):
    torch.manual_seed(0)
    config = narrow("E")
    ref = Reference(config, pool=1, ceil=False)  # PyTorch ports pool as PyTorch does, rounding down
    state = ref.state_dict()
    jcj = {
        k.replace("classifier.0", "classifier.1").replace("classifier.3", "classifier.4"): v for k, v in state.items()
    }
    torch.save(jcj, tmp_path / "vgg19-d01eb7cb.pth")
    names = [n for n in vggnet.build(config).layer_names if n.startswith(("conv", "fc"))]
    keys = sorted({k.rsplit(".", 1)[0] for k in state}, key=lambda k: (k[0] == "c", int(k.split(".")[1])))
    named = {f"{n}.{part}": state[f"{k}.{part}"] for n, k in zip(names, keys) for part in ("weight", "bias")}
    named["fc6.weight"] = named["fc6.weight"].reshape(32, -1, 1, 1)  # fc6 as a 1 x 1 convolution, as such ports have
    torch.save(named, tmp_path / "vgg_conv.pth")
    x = images(1)
    with torch.no_grad():
        expected = ref(bgr_pixels(x))
    for name in ("vgg19-d01eb7cb.pth", "vgg_conv.pth"):
        loaded = load_model(tmp_path / name)
        assert loaded.model.describe() == "VGG-19 (net E) at 1/8 width"
        torch.testing.assert_close(ours(loaded, x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
        assert main(["info", str(tmp_path / name)]) == 0
        assert "BGR 0-255 minus the mean pixel assumed" in capsys.readouterr().out


def test_a_caffe_port_with_torchvision_keys_takes_normalize_caffe(tmp_path, capsys):
    torch.manual_seed(0)
    ref = Reference(CONFIGS["B"], pool=1, ceil=False)  # torchvision's rounding: the file cannot say otherwise
    torch.save(ref.state_dict(), tmp_path / "port.pth")
    x = images(1)
    with torch.no_grad():
        expected = ref(bgr_pixels(x))
    loaded = load_model(tmp_path / "port.pth", arch="vgg13", normalize="caffe")
    torch.testing.assert_close(ours(loaded, x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    plain = load_model(tmp_path / "port.pth", arch="vgg13")
    assert plain.mean == pytest.approx([0.485, 0.456, 0.406])  # without the flag: torchvision's, as before


def test_predict_and_fine_tuning_take_a_caffemodel(pb, tmp_path, capsys):
    from PIL import Image

    torch.manual_seed(0)
    config = narrow("A", 1 / 16)
    ref = Reference(config, classes=3, pool=1, fc=8)
    path = write_caffemodel(pb, tmp_path / "a.caffemodel", deploy_layers(config, ref.state_dict()))
    x = images(1, 256)  # at Q = 256 already: the centre 224 x 224 window is what the net sees
    Image.fromarray((x[0] * 255).round().byte().permute(1, 2, 0).numpy()).save(tmp_path / "img.png")
    assert main(["predict", "--weights", str(path), str(tmp_path / "img.png"), "--top", "1"]) == 0
    with torch.no_grad():
        expected = ref(bgr_pixels(x[..., 16:240, 16:240])).argmax(1).item()
    assert f"class {expected}" in capsys.readouterr().out
    run = tmp_path / "run"
    args = ["train", "--dataset", "synthetic", "--weights", str(path), "--epochs", "1", "--max-steps", "1"]
    args += ["--batch-size", "8", "--amp", "off", "--no-progress", "--no-tensorboard", "--out", str(run)]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert re.search(r"from .*a\.caffemodel: conv1_1", said), said
    assert "newly initialised: fc8 (4 classes;" in said  # the data's classes: a new fc8 on the Caffe trunk
    # trained in the Caffe net's own units: RGB made from BGR, 0-255 as 1/255 steps, minus the mean pixel
    assert "normalisation: mean [0.485, 0.458, 0.4076], std [0.0039, 0.0039, 0.0039]" in said


def test_v0_layers_inside_v1_ones_are_read(tmp_path):
    torch.manual_seed(0)
    config = narrow("A", 1 / 16)
    state = Reference(config, 3, 1, 4).state_dict()
    body = b""
    for name, kind, blobs, _params in deploy_layers(config, state):
        v0 = field(1, name.encode()) + field(
            2,
            {
                "Convolution": b"conv",
                "InnerProduct": b"innerproduct",
                "Pooling": b"pool",
                "ReLU": b"relu",
                "Data": b"data",
                "Dropout": b"dropout",
                "Softmax": b"softmax",
            }[kind],
        )
        if kind == "Convolution":
            v0 += field(7, 1, "varint") + field(8, 3, "varint")
        if kind == "Pooling":
            v0 += field(8, 2, "varint") + field(10, 2, "varint")
        v0 += b"".join(field(50, blob_bytes(b.numpy())) for b in blobs)
        body += field(2, field(1, v0))  # NetParameter.layers { layer { ... } }
    path = tmp_path / "v0.caffemodel"
    path.write_bytes(body)
    found = read_weights(path)
    assert "V0 layers" in found.format
    assert torch.equal(found.state["classifier.6.weight"], state["classifier.6.weight"])
    assert varint(300) == b"\xac\x02"  # the helper writes protobuf's varints


def test_eval_and_the_service_take_a_caffemodel(pb, tmp_path):
    """Both classify RGB images as the authors' net classifies them in its own input (labels: its own answers)."""
    import json

    from fastapi.testclient import TestClient
    from PIL import Image

    from vggnet.serving.app import create_app
    from vggnet.serving.settings import ServeSettings
    from vggnet.web.engine import Engine

    torch.manual_seed(30)  # a random net whose answers follow the images' colours
    config = narrow("A", 1 / 16)
    ref = Reference(config, classes=3, pool=1, fc=8)
    path = write_caffemodel(pb, tmp_path / "a.caffemodel", deploy_layers(config, ref.state_dict()))
    torch.manual_seed(2)
    colours = torch.eye(3).repeat(4, 1)[:, :, None, None]  # red, green, blue images: a swapped BGR would show
    x = ((0.3 * torch.rand(12, 3, 256, 256) + 0.7 * colours) * 255).round() / 255  # Q = 256: centre 224 classified
    with torch.no_grad():
        centre = bgr_pixels(x[..., 16:240, 16:240])
        labels = ref(centre).argmax(1)
        mirrored = (ref(centre).softmax(1) + ref(centre.flip(3)).softmax(1)).argmax(1)  # the service's mirror
    assert len(set(labels.tolist())) > 1 and len(set(mirrored.tolist())) > 1  # answers that tell inputs apart
    files = []
    for i, image in enumerate(x):
        folder = tmp_path / "data" / f"class {labels[i].item()}"
        folder.mkdir(parents=True, exist_ok=True)
        files.append(folder / f"{i}.png")
        Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy()).save(files[-1])
    args = ["eval", "--weights", str(path), "--data", str(tmp_path / "data"), "--protocols", "center"]
    assert main([*args, "--scales", "256", "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["images"] == 12 and report["rows"][0]["cells"][report["columns"][0]]["top1_err"] == 0.0
    with TestClient(create_app(Engine.load(str(path)), ServeSettings())) as client:
        for i, file in enumerate(files):
            answer = client.post("/predict", files={"file": ("x.png", file.read_bytes(), "image/png")})
            assert answer.status_code == 200, answer.text
            assert answer.json()["top"][0]["class"] == f"class {mirrored[i].item()}"


def test_info_counts_parameters_not_bn_statistics_and_lists_few_classes_whole(tmp_path, capsys):
    model = vggnet.build([8, "M", 16, "M"], batch_norm=True, num_classes=3, fc_width=16, pool_size=1)
    path = vggnet.save_weights(model, tmp_path / "bn.safetensors", {"classes": '["red", "green", "blue"]'})
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"; {sum(p.numel() for p in model.parameters()):,} parameters;" in text  # running means are not counted
    assert "classes: 3 named (red, green, blue)\n" in text
