"""VGGs in ONNX graphs load as vggnet models, checked against onnxruntime running the same file on the same images:
torchvision's VGG through both of torch.onnx.export's exporters (BN folded and not), a Keras-style NHWC graph (a
Transpose in front, MatMul + Add dense layers, fc1 flattened H x W x C) with a VGG head and with a head of its own,
and an MXNet-Gluon graph as the ONNX Model Zoo has them (its names, opset 7). Bad files are one sentence."""

import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch
import torchvision
from onnx import TensorProto, helper, numpy_helper

import vggnet
from vggnet.cli import main

ort = pytest.importorskip("onnxruntime")


def session_outputs(path, x: np.ndarray) -> list[np.ndarray]:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})


def torchvision_vgg(name: str, classes: int = 10) -> torch.nn.Module:
    """torchvision's VGG with a compact head (pool5 averaged to 1 x 1, fc 64): small enough to export in a test."""
    m = getattr(torchvision.models, name)(num_classes=classes)
    m.avgpool = torch.nn.AdaptiveAvgPool2d(1)
    layers = [torch.nn.Linear(512, 64), torch.nn.ReLU(True), torch.nn.Dropout(), torch.nn.Linear(64, 64)]
    m.classifier = torch.nn.Sequential(*layers, torch.nn.ReLU(True), torch.nn.Dropout(), torch.nn.Linear(64, classes))
    for module in m.modules():  # statistics of a trained net, so that a batch norm is not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2), module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5), module.bias.data.uniform_(-0.2, 0.2)
    return m.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg11", "vgg16_bn"])
@pytest.mark.parametrize("exporter", ["dynamo", "torchscript", "torchscript, BN kept"])
def test_torch_onnx_export_of_torchvisions_vgg_loads_and_agrees_with_onnxruntime(tmp_path, name, exporter):
    model, path = torchvision_vgg(name), tmp_path / f"{name}.onnx"
    x = torch.rand(2, 3, 32, 32)
    options = {"dynamo": exporter == "dynamo", "do_constant_folding": "kept" not in exporter}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x[:1], str(path), input_names=["image"], dynamic_axes=None if options["dynamo"] else
                          {"image": {0: "n"}}, **options)  # fmt: skip
    if "kept" in exporter and "bn" in name:
        assert "BatchNormalization" in {n.op_type for n in onnx.load(str(path)).graph.node}
    loaded = vggnet.load_model(path)
    (reference,) = session_outputs(path, x[:1].numpy())
    with torch.no_grad():
        got = loaded.model(x[:1])
    np.testing.assert_allclose(got.numpy(), reference, rtol=1e-4, atol=1e-5)
    letter = {"vgg11": "A", "vgg16_bn": "D"}[name]
    assert f"(net {letter})" in loaded.model.describe() and loaded.model.num_classes == 10
    assert loaded.model.batch_norm == ("kept" in exporter and "bn" in name)  # folded BN loads as plain convolutions


# -- graphs built by hand, as tf2onnx and the Model Zoo's MXNet converter write them ---------------------------------
def vgg_weights(config, channels=3, fc=(32, 32, 4), seed=0):
    """Random weights of a small VGG: convolutions O x I x 3 x 3 (or 1 x 1) and biases, fc layers (out, in)."""
    g = torch.Generator().manual_seed(seed)
    convs, c = [], channels
    for item in config:
        if item != "M":
            convs.append(
                (torch.randn(item, c, 3, 3, generator=g) * (2 / (9 * c)) ** 0.5, 0.1 * torch.randn(item, generator=g))
            )
            c = item
    fcs, width = [], c
    for out in fc:
        fcs.append((torch.randn(out, width, generator=g) * (2 / width) ** 0.5, 0.1 * torch.randn(out, generator=g)))
        width = out
    return convs, fcs


def const(nodes, inits, name, value):
    inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
    return name


def keras_style_graph(path, config, convs, fcs, custom_head=False, side=32, normalise=False):
    """An NHWC graph as tf2onnx writes a Keras VGG: Transpose to NCHW, Conv + Relu, MaxPool, Transpose back, Flatten,
    MatMul + Add (weights in (in, out) order, fc1's inputs H x W x C); pool5 also a graph output."""
    nodes, inits, t = [], [], "input"
    if normalise:  # Keras caffe mode in the graph: 0-255 RGB pixels minus the mean
        nodes.append(helper.make_node("Sub", [t, const(nodes, inits, "mean", [123.68, 116.78, 103.94])], ["sub"]))
        t = "sub"
    nodes.append(helper.make_node("Transpose", [t], ["nchw"], perm=[0, 3, 1, 2]))
    t, i, block = "nchw", 0, 1
    for item in config:
        if item == "M":
            nodes.append(helper.make_node("MaxPool", [t], [f"pool{block}"], kernel_shape=[2, 2], strides=[2, 2]))
            t, block = f"pool{block}", block + 1
            continue
        w, b = convs[i]
        ws, bs = const(nodes, inits, f"conv{i}/kernel", w), const(nodes, inits, f"conv{i}/bias", b)
        nodes.append(helper.make_node("Conv", [t, ws, bs], [f"c{i}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        t, i = f"r{i}", i + 1
    pool5 = t
    nodes.append(helper.make_node("Transpose", [t], ["nhwc_out"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Flatten", ["nhwc_out"], ["flat"], axis=1))
    t, channels, map_side = "flat", convs[-1][0].shape[0], side // 2 ** config.count("M")
    head = list(fcs)
    for j, (w, b) in enumerate(head):
        if j == 0:  # Keras flattens H x W x C: fc1's columns in that order
            w = w.reshape(w.shape[0], channels, map_side, map_side).permute(0, 2, 3, 1).reshape(w.shape[0], -1)
        nodes.append(helper.make_node("MatMul", [t, const(nodes, inits, f"dense{j}/kernel", w.T)], [f"m{j}"]))
        nodes.append(helper.make_node("Add", [f"m{j}", const(nodes, inits, f"dense{j}/bias", b)], [f"d{j}"]))
        t = f"d{j}"
        if custom_head and j == 0:
            n = w.shape[0]
            names = [const(nodes, inits, f"bn/{k}", v) for k, v in (("g", np.ones(n)), ("b", np.zeros(n)),
                                                                   ("m", np.zeros(n)), ("v", np.ones(n)))]  # fmt: skip
            nodes.append(helper.make_node("BatchNormalization", [t, *names], ["bn"]))
            t = "bn"
        if j < len(head) - 1:
            nodes.append(helper.make_node("Relu", [t], [f"dr{j}"]))
            t = f"dr{j}"
    nodes.append(helper.make_node("Softmax", [t], ["probabilities"], axis=1))
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", side, side, 3])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("probabilities", pool5)]
    model = helper.make_model(helper.make_graph(nodes, "keras_vgg", inputs, outputs, inits), producer_name="tf2onnx",
                              opset_imports=[helper.make_opsetid("", 13)])  # fmt: skip
    onnx.save(model, str(path))
    return path


CONFIG = [8, "M", 16, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"]  # net A's layout at 1/8 width


def test_a_keras_nhwc_graph_with_a_vgg_head_loads_and_agrees_with_onnxruntime(tmp_path):
    convs, fcs = vgg_weights(CONFIG)
    path = keras_style_graph(tmp_path / "keras_vgg.onnx", CONFIG, convs, fcs)
    loaded = vggnet.load_model(path)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    probabilities, pool5 = session_outputs(path, x)
    assert "the file carries no input normalisation" in " ".join(vggnet.network.weights.read_weights(str(path)).notes)
    with torch.no_grad():  # the graph says nothing of its input: the model takes it as the graph does, NCHW
        inputs = loaded.model.normalization(torch.from_numpy(x).permute(0, 3, 1, 2))
        scores, got = loaded.model(inputs), loaded.model.extract(inputs, ["pool5"])["pool5"]
    np.testing.assert_allclose(torch.softmax(scores, 1).numpy(), probabilities, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.numpy(), pool5, rtol=1e-4, atol=1e-5)
    assert loaded.model.describe().startswith("VGG-11 (net A)") and loaded.model.num_classes == 4


def test_a_keras_graph_with_a_head_of_its_own_loads_as_a_trunk_and_says_what_the_head_was(tmp_path, capsys):
    convs, fcs = vgg_weights(CONFIG, fc=(64, 128, 4))
    path = keras_style_graph(tmp_path / "transfer.onnx", CONFIG, convs, fcs, custom_head=True, normalise=True)
    x = 255 * np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    _, pool5 = session_outputs(path, x)
    found = vggnet.network.weights.read_weights(str(path))
    assert "head not loaded: Flatten → Dense 64 → BatchNorm → Dense 128 → 4, softmax" in found.notes
    assert (
        found.trunk_only
        and found.normalization.pixel_range == 255
        and found.normalization.mean[0] == pytest.approx(123.68)
    )
    loaded = vggnet.load_model(path)
    rgb = torch.from_numpy(x).permute(0, 3, 1, 2) / 255  # vggnet's input: RGB on [0, 1], normalised as the graph did
    with torch.no_grad():
        got = loaded.model.extract(loaded.model.normalization(rgb), ["pool5"])["pool5"]
    np.testing.assert_allclose(got.numpy(), pool5, rtol=1e-4, atol=1e-5)
    assert main(["info", str(path)]) == 0 and "head not loaded" in capsys.readouterr().out


def gluon_zoo_graph(path, config, convs, fcs, side=32):
    """An MXNet Gluon VGG as the ONNX Model Zoo has it: opset 7, names vgg0_conv0_weight ..., Flatten, Gemm with
    transB, Dropout."""
    nodes, inits, t = [], [], "data"
    i = 0
    for item in config:
        if item == "M":
            nodes.append(helper.make_node("MaxPool", [t], [f"vgg0_pool{i}_fwd"], kernel_shape=[2, 2], strides=[2, 2]))
            t = f"vgg0_pool{i}_fwd"
            continue
        w, b = convs[i]
        names = [const(nodes, inits, f"vgg0_conv{i}_weight", w), const(nodes, inits, f"vgg0_conv{i}_bias", b)]
        nodes.append(
            helper.make_node("Conv", [t, *names], [f"vgg0_conv{i}_fwd"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        )
        nodes.append(helper.make_node("Relu", [f"vgg0_conv{i}_fwd"], [f"vgg0_relu{i}_fwd"]))
        t, i = f"vgg0_relu{i}_fwd", i + 1
    nodes.append(helper.make_node("Flatten", [t], ["vgg0_flatten0_reshape0"]))
    t = "vgg0_flatten0_reshape0"
    for j, (w, b) in enumerate(fcs):
        names = [const(nodes, inits, f"vgg0_dense{j}_weight", w), const(nodes, inits, f"vgg0_dense{j}_bias", b)]
        nodes.append(helper.make_node("Gemm", [t, *names], [f"vgg0_dense{j}_fwd"], alpha=1.0, beta=1.0, transA=0,
                                      transB=1))  # fmt: skip
        t = f"vgg0_dense{j}_fwd"
        if j < len(fcs) - 1:
            nodes.append(helper.make_node("Relu", [t], [f"vgg0_dense{j}_relu_fwd"]))
            nodes.append(helper.make_node("Dropout", [f"vgg0_dense{j}_relu_fwd"], [f"vgg0_dropout{j}_fwd"], ratio=0.5))
            t = f"vgg0_dropout{j}_fwd"
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, side, side])]
    outputs = [helper.make_tensor_value_info(t, TensorProto.FLOAT, [1, fcs[-1][0].shape[0]])]
    model = helper.make_model(helper.make_graph(nodes, "vgg0", inputs, outputs, inits), producer_name="MXNet",
                              opset_imports=[helper.make_opsetid("", 7)])  # fmt: skip
    model.ir_version = 3
    onnx.save(model, str(path))
    return path


def test_an_mxnet_gluon_zoo_graph_loads_and_agrees_with_onnxruntime(tmp_path):
    config = [8, 8, "M", 16, 16, "M", 16, 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M"]  # net D's layout
    convs, fcs = vgg_weights(config)
    path = gluon_zoo_graph(tmp_path / "vgg16.onnx", config, convs, fcs)
    x = np.random.default_rng(2).random((1, 3, 32, 32), dtype=np.float32)
    (reference,) = session_outputs(path, x)
    loaded = vggnet.load_model(path)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.model(torch.from_numpy(x)).numpy(), reference, rtol=1e-4, atol=1e-5)
    assert loaded.model.describe().startswith("VGG-16 (net D)")


# -- bad files -----------------------------------------------------------------------------------------------------
def refused(path, capsys, *words):
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "unexpected" not in err, err
    for word in words:
        assert word in err, (word, err)


def test_bad_onnx_files_are_one_sentence(tmp_path, capsys):
    convs, fcs = vgg_weights(CONFIG)
    good = keras_style_graph(tmp_path / "good.onnx", CONFIG, convs, fcs)
    data = good.read_bytes()
    (tmp_path / "short.onnx").write_bytes(data[: len(data) // 3])
    refused(tmp_path / "short.onnx", capsys, "short.onnx", "truncated or not an ONNX file")
    model = onnx.load(str(good))
    onnx.save(model, str(tmp_path / "external.onnx"), save_as_external_data=True, location="external.data",
              size_threshold=0)  # fmt: skip
    (tmp_path / "external.data").unlink()
    refused(tmp_path / "external.onnx", capsys, "external.data", "not beside it")
    quantised = onnx.load(str(good))
    quantised.graph.node.insert(0, helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]))
    onnx.save(quantised, str(tmp_path / "int8.onnx"))
    refused(tmp_path / "int8.onnx", capsys, "quantised", "float file")


def test_an_onnx_file_vggnet_exported_is_a_model_to_run_not_weights_to_train_from(tmp_path):
    convs, fcs = vgg_weights(CONFIG)
    model = onnx.load(str(keras_style_graph(tmp_path / "plain.onnx", CONFIG, convs, fcs)))
    helper.set_model_props(model, {"vggnet_classes": '["a", "b", "c", "d"]'})
    onnx.save(model, str(tmp_path / "exported.onnx"))
    with pytest.raises(ValueError, match="exported.onnx is an exported ONNX model: .* not trained"):
        vggnet.load_weights(vggnet.build(CONFIG, num_classes=4), tmp_path / "exported.onnx")


def test_onnx_graphs_of_other_networks_are_named_by_what_they_have(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torchvision.models.resnet18(num_classes=3).eval(), torch.rand(1, 3, 64, 64),
                          str(tmp_path / "resnet.onnx"), dynamo=False)  # fmt: skip
        torch.onnx.export(torchvision.models.alexnet(num_classes=3).eval(), torch.rand(1, 3, 224, 224),
                          str(tmp_path / "alexnet.onnx"), dynamo=False)  # fmt: skip
    refused(tmp_path / "resnet.onnx", capsys, "resnet.onnx", "not a VGG")
    refused(tmp_path / "alexnet.onnx", capsys, "alexnet.onnx", "not a VGG", "11x11")


# -- the input a graph takes ---------------------------------------------------------------------------------------
def test_a_graph_that_says_nothing_of_its_input_takes_it_as_it_is(tmp_path, capsys):
    """A fine-tuned Keras VGG through tf2onnx (its own package feeds it RGB / 255) and torch.onnx.export of a VGG:
    vggnet's model computes on the graph's own input what onnxruntime computes, channels and scale as they are."""
    convs, fcs = vgg_weights(CONFIG, fc=(64, 128, 4))
    path = keras_style_graph(tmp_path / "finetuned.onnx", CONFIG, convs, fcs, custom_head=True)
    rgb = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3)).astype(np.float32) / 255
    _, pool5 = session_outputs(path, rgb)
    loaded = vggnet.load_model(path)
    assert loaded.mean == [0.0, 0.0, 0.0] and loaded.std == [1.0, 1.0, 1.0] and loaded.crop == 32
    with torch.no_grad():
        x = loaded.model.normalization(torch.from_numpy(rgb).permute(0, 3, 1, 2))
        got = loaded.model.extract(x, ["pool5"])["pool5"]
    np.testing.assert_allclose(got.numpy(), pool5, rtol=1e-4, atol=1e-5)
    assert main(["info", str(path)]) == 0
    assert (
        "the file carries no input normalisation: the model takes its input as the graph did" in capsys.readouterr().out
    )
    model = vggnet.build([8, "M", 16, "M"], num_classes=3, pool_size=1, fc_width=16).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.rand(1, 3, 16, 16), str(tmp_path / "nchw.onnx"), dynamo=False)
    x = np.random.default_rng(4).random((1, 3, 16, 16), dtype=np.float32)
    (reference,) = session_outputs(tmp_path / "nchw.onnx", x)
    loaded = vggnet.load_model(tmp_path / "nchw.onnx")
    with torch.no_grad():
        got = loaded.model(loaded.model.normalization(torch.from_numpy(x)))
    np.testing.assert_allclose(got.numpy(), reference, rtol=1e-4, atol=1e-5)


def test_normalize_names_the_convention_of_a_graph_that_does_not_say(tmp_path, capsys):
    """keras.applications' own VGG16 through tf2onnx takes Keras's caffe input: --normalize caffe says so, and the
    model on RGB [0, 1] then computes what the graph computes on BGR 0-255 minus the mean pixel."""
    convs, fcs = vgg_weights(CONFIG)
    path = keras_style_graph(tmp_path / "keras_vgg16.onnx", CONFIG, convs, fcs)
    rgb = np.random.default_rng(5).random((2, 32, 32, 3), dtype=np.float32)
    caffe = rgb[..., ::-1] * 255 - np.array([103.939, 116.779, 123.68], dtype=np.float32)
    probabilities, _ = session_outputs(path, np.ascontiguousarray(caffe))
    loaded = vggnet.load_model(path, normalize="caffe")
    with torch.no_grad():
        scores = loaded.model(loaded.model.normalization(torch.from_numpy(rgb).permute(0, 3, 1, 2)))
    np.testing.assert_allclose(torch.softmax(scores, 1).numpy(), probabilities, rtol=1e-4, atol=1e-6)
    assert main(["info", str(path), "--normalize", "caffe"]) == 0
    shown = capsys.readouterr().out
    assert "given with --normalize caffe" in shown and "conv1_1's input channels reversed" in shown


# -- external data -------------------------------------------------------------------------------------------------
def external_graph(folder, location="weights.data"):
    """A small VGG graph whose initialisers live in an external file at ``location`` (relative to ``folder``)."""
    convs, fcs = vgg_weights(CONFIG)
    model = onnx.load(str(keras_style_graph(folder / "inline.onnx", CONFIG, convs, fcs)))
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"), save_as_external_data=True, location=location, size_threshold=0)
    return folder / "model.onnx"


def relocate(path, location):
    """The graph's external data made to point at ``location`` instead."""
    model = onnx.load(str(path), load_external_data=False)
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(path))


def test_external_weights_beside_the_model_load_and_those_outside_its_folder_are_refused_unread(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = external_graph(folder, "data/weights.bin")  # a folder inside the model's own: its data
    expected = vggnet.network.weights.read_weights(tmp_path / "model" / "inline.onnx").state
    got = vggnet.network.weights.read_weights(path).state
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    outside = tmp_path / "elsewhere.bin"
    (folder / "data" / "weights.bin").rename(outside)
    (folder / "link.bin").symlink_to(outside)
    for location, shown in (("../elsewhere.bin", "../elsewhere.bin"), (str(outside), str(outside)),
                            ("link.bin", "link.bin")):  # fmt: skip
        relocate(path, location)
        for command in (["info", "model.onnx"], ["convert", "model.onnx", "--out", "x.safetensors"]):
            run = subprocess.run([sys.executable, "-m", "vggnet", *command], cwd=folder, capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
            assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
            assert "weights point outside its folder" in run.stderr and shown in run.stderr, run.stderr
            assert "unexpected" not in run.stderr and not (folder / "x.safetensors").exists()
    os.mkfifo(tmp_path / "fifo.bin")  # opened for reading, a FIFO without a writer blocks: the run would time out
    relocate(path, "../fifo.bin")
    run = subprocess.run([sys.executable, "-m", "vggnet", "info", str(path)], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 2 and "weights point outside its folder (../fifo.bin)" in run.stderr, run.stderr


def test_a_tensor_that_declares_more_than_the_file_holds_is_a_sentence(tmp_path, capsys):
    convs, fcs = vgg_weights(CONFIG)
    model = onnx.load(str(keras_style_graph(tmp_path / "good.onnx", CONFIG, convs, fcs)))
    first = model.graph.initializer[0]
    first.dims[:] = [2**20, 2**20, 3, 3]  # raw data of a 8 x 3 x 3 x 3 kernel
    onnx.save(model, str(tmp_path / "huge.onnx"))
    refused(tmp_path / "huge.onnx", capsys, "huge.onnx", "conv0/kernel", "more than the largest tensor of any VGG")
    first.dims[:] = [512, 3, 3, 3]
    onnx.save(model, str(tmp_path / "short.onnx"))
    refused(tmp_path / "short.onnx", capsys, "conv0/kernel declares 13,824 values (55,296 bytes)", "holds 864 bytes")
    path = external_graph(tmp_path)
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].dims[0] = 4096  # its external length stays that of 8 filters
    onnx.save(model, str(path))
    refused(path, capsys, "model.onnx: the initialiser conv0/kernel declares", "truncated, damaged")
