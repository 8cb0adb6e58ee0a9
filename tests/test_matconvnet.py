"""MatConvNet's .mat files, written here by scipy.io.savemat the way MatConvNet's Caffe importer lays a net out
(every Caffe blob K x C x H x W reversed to W x H x C x K, then its first two dimensions swapped: H x W x C x K; conv1's
input channels flipped from BGR to RGB; fc6-fc8 as convolutions), in the older layout and the meta layout: vggnet's
reading gives the Caffe net's activations at relu1_1 ... relu5_4 on the same image, where reading the filters the
way neural-style does (the first two dimensions swapped) would not."""

import numpy as np
import pytest
import torch
from scipy.io import savemat

import vggnet
from vggnet.cli import main

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


def caffe_net(letter="E", classes=5):
    """A small net standing for the authors' Caffe model: its weights take BGR 0-255 images minus the mean."""
    torch.manual_seed(0)
    return vggnet.build(letter, width=1 / 16, pool_size=1, fc_width=16, num_classes=classes).eval()


def importer_layout(blob: torch.Tensor, bgr_input: bool = False) -> np.ndarray:
    """A Caffe blob as MatConvNet's importer stores it (utils/import-caffe.py with its default --transpose)."""
    array = blob.detach().numpy()
    if array.ndim == 2:  # an InnerProduct: K x (C*H*W), a convolution over its input map
        array = array.reshape(array.shape[0], -1, 1, 1)
    array = array.transpose()  # blobproto_to_array: all dimensions reversed, W x H x C x K
    array = array.transpose([1, 0, 2, 3])  # CaffeConv.transpose: H x W x C x K
    if bgr_input:
        array = array[:, :, ::-1, :]  # conv1's input channels, BGR to RGB
    return np.ascontiguousarray(array, dtype=np.float32)


def mat_layers(net: vggnet.VGG, older: bool) -> np.ndarray:
    """The layers of a MatConvNet simplenn struct: convs, ReLUs, pools, fc6-fc8 and a softmax."""
    state, layers, first = net.state_dict(), [], True
    for name in net.layer_names:
        kind = "conv" if name.startswith(("conv", "fc")) else "relu" if name.startswith("relu") else None
        if name.startswith("pool"):
            layers.append({"name": name, "type": "pool", "method": "max", "pool": np.array([[2.0, 2.0]]),
                           "stride": np.array([[2.0, 2.0]]), "pad": np.zeros((1, 4))})  # fmt: skip
        elif kind == "relu":
            layers.append({"name": name, "type": "relu"})
        elif kind == "conv":
            path = net.layer(name)
            key = next(k for k, v in net.named_modules() if v is path)
            filters = importer_layout(state[f"{key}.weight"], bgr_input=first)
            biases = state[f"{key}.bias"].numpy().reshape(1, -1).astype(np.float32)
            first = False
            if older:  # MatConvNet before beta-13: the weights as two fields
                layers.append({"name": name, "type": "conv", "filters": filters, "biases": biases})
            else:
                weights = np.empty((1, 2), dtype=object)
                weights[0, 0], weights[0, 1] = filters, biases
                layers.append({"name": name, "type": "conv", "weights": weights, "stride": np.array([[1.0, 1.0]])})
    layers.append({"name": "prob", "type": "softmax"})
    cell = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cell[0, i] = layer
    return cell


def write_mat(path, net, older: bool, classes, wrap=False):
    names = np.empty((1, len(classes)), dtype=object)
    names[0, :] = classes
    average = CAFFE_MEAN_BGR[::-1].copy()  # MatConvNet's averageImage is RGB
    if older:
        normalization = {"averageImage": average, "imageSize": np.array([[224.0, 224.0, 3.0]])}
        content = {"layers": mat_layers(net, True), "normalization": normalization,
                   "classes": {"name": names, "description": names}}  # fmt: skip
    else:
        content = {"layers": mat_layers(net, False), "meta": {"normalization": {"averageImage":
                   average.reshape(1, 1, 3)}, "classes": {"description": names}}}  # fmt: skip
    savemat(str(path), {"net": content} if wrap else content)
    return path


RELU_E = [f"relu{b}_{i}" for b, n in enumerate([2, 2, 4, 4, 4], 1) for i in range(1, n + 1)]  # net E's, relu1_1 ...


@pytest.mark.parametrize("older", [True, False])
def test_a_matconvnet_file_gives_the_caffe_nets_activations_on_the_same_image(tmp_path, older, capsys):
    net, classes = caffe_net("E"), [f"class {i}" for i in range(5)]
    path = write_mat(tmp_path / "imagenet-vgg-verydeep-19.mat", net, older, classes)
    loaded = vggnet.load_model(path)
    assert loaded.classes == classes and loaded.model.describe().startswith("VGG-19 (net E)")
    rgb = torch.rand(1, 3, 32, 32)  # an image, RGB on [0, 1]
    caffe_input = rgb.flip(1) * 255 - torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32).view(1, 3, 1, 1)
    names = RELU_E
    with torch.no_grad():
        expected = net.extract(caffe_input, names)
        got = loaded.model.extract(loaded.model.normalization(rgb), names)
    for name in names:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # the first two dimensions read as width and height, as neural-style does: another net
        conv = loaded.model.layer("conv1_1")
        conv.weight.copy_(conv.weight.transpose(2, 3).clone())
        swapped = loaded.model.extract(loaded.model.normalization(rgb), ["relu1_1"])["relu1_1"]
    assert not torch.allclose(swapped, expected["relu1_1"], atol=1e-3)
    assert main(["info", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "MatConvNet" in shown and "height x width x channels x filters" in shown


def test_vgg_faces_mat_file_is_a_d_with_its_identities(tmp_path):
    net, identities = caffe_net("D", classes=2622), [f"person {i}" for i in range(2622)]
    loaded = vggnet.load_model(write_mat(tmp_path / "vgg-face.mat", net, older=False, classes=identities, wrap=True))
    assert loaded.model.describe().startswith("VGG-16 (net D)") and loaded.model.num_classes == 2622
    assert loaded.classes[-1] == "person 2621" and loaded.model.normalization.std[0] == pytest.approx(1 / 255)


def test_bad_mat_files_are_one_sentence(tmp_path, capsys):
    good = write_mat(tmp_path / "good.mat", caffe_net("A"), older=False, classes=["a", "b", "c", "d", "e"])
    (tmp_path / "short.mat").write_bytes(good.read_bytes()[:300])
    savemat(str(tmp_path / "empty.mat"), {"x": np.zeros(3)})
    for name, says in (("short.mat", "short.mat"), ("empty.mat", "without a network's layers")):
        assert main(["info", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def write_v73(path, content: dict):
    """``content`` as MATLAB's -v7.3 save writes it: HDF5 behind a 512-byte MATLAB header, structs as groups, cell
    arrays as object references into #refs#, character arrays as uint16 codes, every array in column-major order."""
    import h5py

    count = iter(range(10**6))
    with h5py.File(str(path), "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")

        def put(group, name, value):
            if isinstance(value, dict):
                sub = group.create_group(name)
                for k, v in value.items():
                    put(sub, k, v)
            elif isinstance(value, np.ndarray) and value.dtype == object:
                keys = [f"r{next(count)}" for _ in range(value.size)]
                for key, item in zip(keys, value.ravel(order="F")):
                    put(refs, key, item)
                data = np.array([refs[k].ref for k in keys], dtype=h5py.ref_dtype).reshape(value.shape[::-1])
                group.create_dataset(name, data=data)
            elif isinstance(value, str):
                group.create_dataset(name, data=np.array([ord(c) for c in value], dtype=np.uint16).reshape(-1, 1))
            else:
                array = np.asarray(value, dtype=np.float32)
                group.create_dataset(name, data=array.transpose(tuple(range(array.ndim))[::-1]))

        for key, value in content.items():
            put(f, key, value)
    with open(path, "r+b") as header:
        header.write(b"MATLAB 7.3 MAT-file, written by the tests".ljust(116))
    return path


def test_a_matlab_v73_file_reads_through_hdf5(tmp_path):
    net = caffe_net("A")
    names = np.empty((1, 5), dtype=object)
    names[0, :] = list("abcde")
    meta = {
        "normalization": {"averageImage": CAFFE_MEAN_BGR[::-1].reshape(1, 1, 3).copy()},
        "classes": {"description": names},
    }
    loaded = vggnet.load_model(write_v73(tmp_path / "v73.mat", {"layers": mat_layers(net, False), "meta": meta}))
    rgb = torch.rand(1, 3, 32, 32)
    caffe_input = rgb.flip(1) * 255 - torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = net.extract(caffe_input, ["relu5_2"])["relu5_2"]
        got = loaded.model.extract(loaded.model.normalization(rgb), ["relu5_2"])["relu5_2"]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert loaded.classes == list("abcde")


def test_an_average_image_is_averaged_in_float64(tmp_path):
    """The older layout's averageImage is a whole image in float32: its mean colour summed in float32 is off by
    up to 1e-3 of 255 here (0.04 on the real file); in float64 it is the mean of the values the file holds."""
    rng = np.random.default_rng(0)
    image = (CAFFE_MEAN_BGR[::-1] + rng.normal(0, 40, (224, 224, 3))).astype(np.float32)
    savemat(str(tmp_path / "older.mat"), {"layers": mat_layers(caffe_net("A"), True),
                                          "normalization": {"averageImage": image}})  # fmt: skip
    mean = vggnet.network.weights.read_weights(tmp_path / "older.mat").normalization.mean
    np.testing.assert_allclose(mean, image.astype(np.float64).reshape(-1, 3).mean(0), rtol=0, atol=1e-9)
