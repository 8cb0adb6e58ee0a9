import json
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from helpers import tiny, tiny_config
from torch import nn

import vggnet
from vggnet import CONFIGS, build
from vggnet.formats.found import convert

PAPER_PARAMS = {
    "A": 132_863_336,
    "A-LRN": 132_863_336,
    "B": 133_047_848,
    "C": 133_638_952,
    "D": 138_357_544,
    "E": 143_667_240,
}
TV_BN_PARAMS = {"vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248}
TORCHVISION_NAMES = ["vgg11", "vgg13", "vgg16", "vgg19"]


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("letter", list(CONFIGS))
def test_parameter_counts_match_the_paper(letter):
    with torch.device("meta"):
        assert count(build(letter)) == PAPER_PARAMS[letter]


@pytest.mark.parametrize("name", list(TV_BN_PARAMS))
def test_bn_parameter_counts_match_torchvision(name):
    with torch.device("meta"):
        assert count(build(name)) == TV_BN_PARAMS[name]


def test_names_resolve_to_configurations():
    with torch.device("meta"):
        assert build("vgg16_conv1").config == CONFIGS["C"]
        assert build("vgg11_lrn").config == CONFIGS["A-LRN"]
        assert build("D").arch == "vgg16" and build("vgg19_bn").batch_norm
        assert vggnet.vgg13_bn().arch == "vgg13_bn"
        custom = build([8, "M", (16, 1), "M"], num_classes=3, pool_size=1, fc_width=4)
    assert custom.arch is None and custom.min_size == 4


def caffe_lrn(a: torch.Tensor) -> torch.Tensor:
    """The paper's LRN written out: b = a / (k + alpha * sum of a^2 over 5 neighbouring channels)^beta."""
    padded = torch.nn.functional.pad(a.pow(2), (0, 0, 0, 0, 2, 2))
    window = sum(padded[:, i : i + a.shape[1]] for i in range(5))
    return a / (2 + 1e-4 * window).pow(0.75)


def test_lrn_is_alexnets_function_in_pixel_units():
    lrn = tiny("vgg11_lrn").set_input_scale(1.0).layer("norm1")  # input in pixel units: the paper's constants as such
    x = torch.rand(1, 7, 3, 3) * 10
    torch.testing.assert_close(lrn(x), caffe_lrn(x))


def test_a_lrn_normalises_as_caffe_did_on_0_255_pixels_whatever_the_input_units():
    """Caffe's net saw 0-255 pixels minus the mean; vggnet's sees [0, 1] minus the mean (or divided by a std). With the
    same filters (biases in pixel units) conv1's activations differ by the input's scale factor, and vggnet's LRN
    must give Caffe's normalisation divided by that factor, not a constant 2^-0.75."""
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (2, 3, 40, 40)).float()
    mean = torch.tensor([123.68, 116.779, 103.939])[None, :, None, None]
    for std in (None, 0.25):
        net = build("vgg11_lrn", width=1 / 8, num_classes=10, pool_size=1, fc_width=16).eval()
        scale = 255.0 if std is None else 255.0 * std
        net.set_input_scale(scale)
        conv = net.layer("conv1_1")
        with torch.no_grad():
            conv.bias.uniform_(-0.5, 0.5)
            caffe = caffe_lrn(torch.relu(F.conv2d(pixels - mean, conv.weight, conv.bias * scale, padding=1)))
            ours = net.extract((pixels - mean) / scale, ["relu1_1", "norm1"])
        torch.testing.assert_close(ours["norm1"] * scale, caffe, rtol=1e-4, atol=1e-3)
        ratio = (ours["norm1"] / ours["relu1_1"])[ours["relu1_1"] > 1e-3]
        assert ratio.max() - ratio.min() > 0.1  # it normalises: not a constant
    assert "LRN in Caffe's pixel units (1 input unit = 63.75 pixel levels)" in net.describe()


def test_an_lrn_models_units_come_from_its_normalisation_when_trained_and_loaded(tmp_path):
    from vggnet.training import train

    result = train(tiny_config(tmp_path / "run", arch="vgg11_lrn", normalize="meanstd", max_steps=4))
    loaded = vggnet.load_model(tmp_path / "run" / "last.pt")
    std = json.loads((tmp_path / "run" / "data_stats.json").read_text())["std"]
    assert result.status == "max_steps" and loaded.model.input_scale == pytest.approx(255 * sum(std) / 3)
    assert loaded.model.layer("norm1").alpha == pytest.approx(5e-4 * loaded.model.input_scale**2)
    # on the trained net, as the reproduction measures it on its validation images: the layer normalises
    from vggnet.data.memory import synthetic
    from vggnet.data.sources import memory_source
    from vggnet.reproduce.runs import lrn_ratio

    ratio = lrn_ratio(loaded, memory_source(synthetic(64), 32), torch.device("cpu"))
    assert ratio["p99"] - ratio["p01"] > 0.05 and ratio["max"] <= 2**-0.75 + 1e-4


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
@pytest.mark.parametrize("bn", [False, True])
def test_state_dict_keys_and_shapes_equal_torchvision(name, bn):
    name = name + ("_bn" if bn else "")
    with torch.device("meta"):
        ours = build(name).state_dict()
        theirs = getattr(torchvision.models, name)().state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn"])
def test_torchvision_weights_round_trip_with_identical_outputs(name, tmp_path):
    theirs = getattr(torchvision.models, name)().eval()
    if name.endswith("_bn"):  # non-trivial running statistics
        for m in theirs.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2)
    path = tmp_path / f"{name}.pth"
    torch.save(theirs.state_dict(), path)
    ours = build(name).eval()
    vggnet.load_weights(ours, path)
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
        # and back: ours load into torchvision with strict=True
        ours.features[0].weight.mul_(1.5)
        theirs.load_state_dict(ours.state_dict(), strict=True)
        torch.testing.assert_close(ours(x), theirs(x))


def test_timm_layout_is_converted():
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("vgg11", pretrained=False, num_classes=10).eval()
    ours = build("vgg11", num_classes=10).eval()
    state = theirs.state_dict()
    vggnet.network.weights.check_compatible(ours, convert(state))
    ours.load_state_dict(convert(state))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)


def test_article_example_vgg16_bn_500_classes():
    model = vggnet.vgg16_bn(num_classes=500)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 500)


def test_any_input_size_at_least_32():
    model = tiny("vgg13_bn")
    with torch.no_grad():
        for h, w in [(32, 32), (45, 77), (224, 224), (300, 180)]:
            assert model(torch.randn(2, 3, h, w)).shape == (2, 10)


def test_compact_head_for_small_images():
    model = build("vgg16_bn", num_classes=10, in_channels=1, pool_size=1, fc_width=512, width=0.25)
    assert model.classifier[0].in_features == 128
    assert count(model) < 2_000_000
    assert model(torch.randn(4, 1, 32, 32)).shape == (4, 10)


@pytest.mark.parametrize("arch", ["vgg11", "vgg16_conv1_bn", "vgg11_lrn"])
def test_score_map_equals_forward_at_224(arch):
    model = tiny(arch)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        scores = model.score_map(x)
        assert scores.shape == (2, 10, 1, 1)
        torch.testing.assert_close(scores.flatten(1), model(x), rtol=1e-4, atol=1e-5)


def test_score_map_is_dense_and_shares_parameters():
    model = tiny("vgg16")
    params = [id(p) for p in model.parameters()]
    keys = list(model.state_dict())
    with torch.no_grad():
        scores = model.score_map(torch.randn(1, 3, 288, 352))
    assert scores.shape == (1, 10, 3, 5)  # (288/32 - 7 + 1, 352/32 - 7 + 1)
    # the dense form added no parameters, buffers or copies to the module ...
    assert [id(p) for p in model.parameters()] == params and list(model.state_dict()) == keys
    # ... and reads the live FC parameters: changed in place after a first call, both forms see the change
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        for fc in (model.classifier[0], model.classifier[3], model.classifier[6]):
            fc.weight.mul_(torch.rand_like(fc.weight) + 0.5)
            fc.bias.add_(0.1)
        torch.testing.assert_close(model.score_map(x).flatten(1), model(x), rtol=1e-4, atol=1e-5)


def test_score_map_needs_224():
    with pytest.raises(ValueError, match="at least 224x224"):
        tiny().score_map(torch.randn(1, 3, 160, 224))


def test_extract_names_and_values():
    model = tiny("vgg16_bn")
    x = torch.randn(2, 3, 64, 64)
    taps = ["relu1_2", "conv1_1", "bn1_1", "relu3_3", "pool5", "fc7", "fc8"]
    with torch.no_grad():
        out = model.extract(x, taps)
        assert list(out) == taps
        expected = model.features[:6](x.clone())  # conv1_1 bn1_1 relu1_1 conv1_2 bn1_2 relu1_2
        torch.testing.assert_close(out["relu1_2"], expected)
        torch.testing.assert_close(out["conv1_1"], model.features[0](x))
        assert (out["conv1_1"] < 0).any()  # not overwritten by the in-place ReLU that follows it
        torch.testing.assert_close(out["pool5"], model.features(x))
        torch.testing.assert_close(out["fc8"], model(x))
        assert out["fc7"].shape == (2, 32) and (out["fc7"] < 0).any()


def test_extract_stops_at_the_deepest_name():
    model = tiny("vgg16")
    calls = []
    for name in ("conv3_1", "conv4_1", "fc6"):
        model.layer(name).register_forward_hook(lambda m, i, o, n=name: calls.append(n))
    with torch.no_grad():
        model.extract(torch.randn(1, 3, 32, 32), ["relu2_2", "conv3_1"])
    assert calls == ["conv3_1"]


def test_perceptual_taps_and_caffe_names():
    model = tiny("vgg16")
    for tap in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3", "pool5", "fc6", "relu6", "fc7", "relu7", "fc8"):
        assert tap in model.layer_names
    assert "norm1" in tiny("vgg11_lrn").layer_names
    assert [f["name"] for f in model.feature_info] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    with pytest.raises(ValueError, match="unknown layer 'relu9_9'"):
        model.extract(torch.randn(1, 3, 32, 32), ["relu9_9"])


def test_init_schemes_statistics():
    paper = build("vgg11", init="normal", width=0.25)  # the paper's head: 7 x 7 pool, 4,096 wide
    for m in paper.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.numel() > 100_000:
            assert abs(m.weight.std().item() - 0.01) < 5e-4
            assert m.bias.abs().max() == 0
    kaiming = build("vgg11", width=0.25)
    conv = kaiming.layer("conv3_1")
    assert abs(conv.weight.std().item() - math.sqrt(2 / (conv.out_channels * 9))) < 0.003
    assert abs(kaiming.classifier[0].weight.std().item() - 0.01) < 5e-4  # torchvision's, on torchvision's head
    xavier = build("vgg11", init="xavier", width=0.25, fc_width=1024)
    w = xavier.classifier[0].weight
    bound = math.sqrt(6 / (w.shape[0] + w.shape[1]))
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    with pytest.raises(ValueError, match="unknown init scheme"):
        build("vgg11", init="orthogonal")


def test_preinit_copies_first_four_convs_and_the_fc_layers():
    net_a = tiny("vgg11")
    net_d = tiny("vgg16")
    before = {k: v.clone() for k, v in net_d.state_dict().items()}
    copied = vggnet.preinit_from(net_d, net_a)
    assert copied == ["conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8"]
    for name in copied:
        torch.testing.assert_close(net_d.layer(name).weight, net_a.layer(name).weight)
        torch.testing.assert_close(net_d.layer(name).bias, net_a.layer(name).bias)
    for name in ("conv1_2", "conv2_2", "conv3_3", "conv4_1", "conv5_3"):
        index = net_d.layer_names.index(name)
        torch.testing.assert_close(net_d.features[index].weight, before[f"features.{index}.weight"])
    with pytest.raises(ValueError, match="cannot pre-initialise"):
        vggnet.preinit_from(tiny("vgg16", num_classes=5), net_a)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: build("vgg17"), "unknown architecture 'vgg17'"),
        (lambda: build([64, "X"]), "bad configuration entry 'X'"),
        (lambda: tiny()(torch.randn(1, 1, 32, 32)), "expected 3 input channels, got 1"),
        (lambda: tiny()(torch.randn(1, 3, 31, 64)), "at least 32x32, got 31x64"),
        (lambda: tiny()(torch.randn(3, 32, 32)), r"4-D N x C x H x W tensor, got \(3, 32, 32\)"),
        (lambda: tiny().extract(torch.randn(1, 3, 32, 32), []), "at least one layer"),
        (lambda: build("vgg11", num_classes=0), "num_classes must be a positive integer"),
        (lambda: build("vgg11", dropout=1.5), "dropout must be in"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_built_models_run_nhwc_but_hand_back_standard_tensors(tmp_path):
    model = tiny("vgg16_bn")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    x = torch.randn(2, 3, 224, 224)  # a plain NCHW batch
    with torch.no_grad():
        pool5 = model.forward_features(x)
        taps = model.extract(x, ["relu1_2", "pool5", "fc7"])
        scores = model.score_map(torch.randn(1, 3, 256, 288))
    for t in (pool5, *taps.values(), scores):
        assert t.is_contiguous()
        t.view(t.shape[0], -1)  # what users do with them
    # saved weights are plain tensors (torchvision's keys and shapes are checked above)
    saved = vggnet.network.weights.read_file(vggnet.save_weights(model, tmp_path / "w.safetensors"))
    assert all(v.is_contiguous() for v in saved.values())


def test_pools_rounded_up_pass_28_pixels_and_keep_weight_parity(tmp_path):
    floor, ceil = tiny("vgg13_bn", pool_size=1), tiny("vgg13_bn", pool_size=1, ceil_mode=True)
    ceil.load_state_dict(floor.state_dict())  # the same weights fit both
    assert [floor.map_size(s) for s in (28, 32, 36)] == [0, 1, 1]
    assert [ceil.map_size(s) for s in (28, 32, 36, 48)] == [1, 1, 2, 2]
    assert (floor.min_size, ceil.min_size, ceil.min_input(2)) == (32, 1, 33)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        assert ceil.extract(x, "pool5")["pool5"].shape == (2, 32, 1, 1)
        torch.testing.assert_close(ceil.score_map(x).mean((2, 3)), ceil(x))
        x32 = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(ceil(x32), floor(x32))  # 32 pixels pool the same either way
    with pytest.raises(ValueError, match="at least 32x32, got 28x28"):
        floor(x)
    saved = vggnet.load_model(vggnet.save_weights(ceil, tmp_path / "c.safetensors"))
    assert saved.model.ceil_mode and saved.model.to_config() == ceil.to_config()


@pytest.mark.parametrize("arch", ["vgg11_bn", "vgg16_conv1", "vgg11_lrn"])
def test_torchvisions_fx_feature_extraction_traces_a_vggnet_model(arch):
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model = tiny(arch, pool_size=1)
    names = ["relu1_1", "pool2", "relu5_2", "relu7", "fc8"]
    nodes = {f"{'features' if model.layer_index(n) < len(model.features) else 'classifier'}."
             f"{model.layer_index(n) - (0 if model.layer_index(n) < len(model.features) else len(model.features))}": n
             for n in names}  # fmt: skip
    assert set(nodes) <= set(get_graph_node_names(model)[1])
    extractor = create_feature_extractor(model, return_nodes=nodes)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        got, expected = extractor(x), model.extract(x, names)
    for name in names:
        torch.testing.assert_close(got[name], expected[name])
    traced = torch.fx.symbolic_trace(model)  # and the whole model, as torch.fx itself traces it
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


@pytest.mark.parametrize(("pool", "low", "example"), [(7, 224, 256), (1, 64, 96)])
def test_torch_export_with_dynamic_batch_and_size_needs_no_knowledge_of_the_layout(pool, low, example):
    from torch.export import Dim, export

    model = tiny("vgg11_bn", pool_size=pool)  # channels_last weights, as every vggnet model has
    batch, height, width = Dim("batch", min=1, max=64), Dim("height", min=low, max=512), Dim("width", min=low, max=512)
    program = export(model, (torch.randn(2, 3, example, example),), dynamic_shapes=({0: batch, 2: height, 3: width},))
    for shape in [(1, 3, low, low), (5, 3, low + 33, 500)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), model(x))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)  # eager keeps its layout


def test_a_model_says_which_of_the_papers_nets_it_is():
    assert build("vgg13_bn", width=0.25).describe() == "VGG-13 (net B) with BN at 1/4 width"
    assert build("E", width=3 / 16).describe() == "VGG-19 (net E) at 3/16 width"
    assert (
        build("vgg11_lrn").describe()
        == "VGG-11 (net A-LRN), its LRN in Caffe's pixel units (1 input unit = 255 pixel levels)"
    )
    assert build("vgg16_conv1", width=0.5).describe() == "VGG-16 (net C) at 1/2 width"
    custom = build([16, 16, "M", 32, (32, 1), "M"], batch_norm=True)
    assert custom.describe() == "VGG [16, 16, M, 32, (32, 1), M] with BN (4 convolutions + 3 FC layers)"
