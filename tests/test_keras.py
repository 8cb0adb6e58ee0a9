"""Keras's VGG files against Keras itself: keras.applications' VGG16 and VGG19 (and deepface's VGG-Face layout)
built and saved by Keras 3 on its torch backend, predicted by Keras with its own preprocess_input, and read by
vggnet from nothing but the RGB image."""

from __future__ import annotations

import json
import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no TensorFlow

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from vggnet.base.normalization import VGGFACE_MEAN_PIXEL
from vggnet.cli import main  # noqa: E402
from vggnet.data.transforms import normalize  # noqa: E402
from vggnet.inference.descriptors import load_features  # noqa: E402
from vggnet.inference.loading import load_model  # noqa: E402
from vggnet.network.weights import read_weights  # noqa: E402

SIDE = 64  # pool5 is 2 x 2: fc1 flattens a map, row by row, then column, then channel


def rgb_images(n: int = 2, side: int = SIDE) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, side, side, 3)).astype(np.float32)


def vggnet_outputs(path, rgb: np.ndarray, top: bool) -> np.ndarray:
    """vggnet's probabilities (or pool5, channels last) for RGB uint8 images, normalised as the file says."""
    loaded = load_model(path)
    x = torch.from_numpy(rgb.transpose(0, 3, 1, 2).astype(np.uint8))
    with torch.no_grad():
        inputs = normalize(x, loaded.mean, loaded.std)
        if top:
            return torch.softmax(loaded.model(inputs), 1).numpy()
        return loaded.model.extract(inputs, "pool5")["pool5"].permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module", params=[("VGG16", True), ("VGG19", False), ("VGG16", False)], ids=str)
def saved(request, tmp_path_factory):
    """A Keras application saved in every format, with Keras's own predictions for its own preprocessing."""
    name, top = request.param
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, include_top=top, input_shape=(SIDE, SIDE, 3), classes=7)
    folder = tmp_path_factory.mktemp(name)
    paths = [folder / "model.h5", folder / "model.keras", folder / "model.weights.h5"]
    model.save(paths[0])
    model.save(paths[1])
    model.save_weights(paths[2])
    preprocess = getattr(keras.applications, name.lower()).preprocess_input  # "caffe": BGR, minus the mean pixel
    expected = model.predict(preprocess(rgb_images().copy()), verbose=0)
    return name, top, paths, expected


@pytest.mark.parametrize("which", [0, 1, 2], ids=[".h5", ".keras", ".weights.h5"])
def test_vggnet_equals_keras_predict_on_the_rgb_image_alone(saved, which):
    name, top, paths, expected = saved
    got = vggnet_outputs(paths[which], rgb_images(), top)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale)
    found = read_weights(paths[which])
    assert found.config["arch"] == ("vgg16" if name == "VGG16" else "vgg19")
    assert (found.normalization.channel_order, found.normalization.pixel_range) == ("BGR", 255.0)
    assert found.trunk_only == (not top)


def test_a_trunk_gives_features_and_fine_tuning_but_no_predictions(saved, tmp_path, capsys):
    name, top, paths, _ = saved
    if top:
        pytest.skip("a file with its classifier")
    image = tmp_path / "img.png"
    Image.fromarray(rgb_images(1)[0].astype(np.uint8)).save(image)
    assert main(["predict", "--weights", str(paths[1]), str(image)]) == 2
    assert "holds the convolutional trunk only" in capsys.readouterr().err
    assert main(["convert", str(paths[1]), "--out", str(tmp_path / "trunk.safetensors")]) == 0
    assert "the convolutional trunk only (no fc6-fc8)" in capsys.readouterr().out
    again = read_weights(tmp_path / "trunk.safetensors")
    assert again.trunk_only and not any(k.startswith("classifier.") for k in again.state)
    run = tmp_path / "run"
    args = ["train", "--dataset", "synthetic", "--weights", str(paths[0]), "--epochs", "1", "--max-steps", "1"]
    args += ["--pool-size", "1", "--fc-width", "16", "--batch-size", "4", "--amp", "off"]
    assert main([*args, "--no-progress", "--no-tensorboard", "--out", str(run)]) == 0
    assert "newly initialised: fc6, fc7, fc8 (the file holds the convolutional trunk only)" in capsys.readouterr().out


def deepface(side: int = SIDE, classes: int = 2622) -> keras.Model:
    """deepface's VGG-Face: ZeroPadding2D before 'valid' convolutions, fc6-fc8 as convolutions, a softmax."""
    layers = keras.layers
    model = keras.Sequential([keras.Input((side, side, 3))])
    for width, count in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
        for _ in range(count):
            model.add(layers.ZeroPadding2D((1, 1)))
            model.add(layers.Conv2D(width, (3, 3), activation="relu"))
        model.add(layers.MaxPooling2D((2, 2), strides=(2, 2)))
    model.add(layers.Conv2D(64, (side // 32, side // 32), activation="relu"))  # fc6 over pool5's whole map
    model.add(layers.Dropout(0.5))
    model.add(layers.Conv2D(64, (1, 1), activation="relu"))  # fc7: the face descriptor
    model.add(layers.Dropout(0.5))
    model.add(layers.Conv2D(classes, (1, 1)))
    model.add(layers.Flatten())
    model.add(layers.Activation("softmax"))
    return model


def test_deepface_vgg_face_weights_are_a_d_with_2622_classes_and_fc7_its_descriptor(tmp_path, capsys):
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    keras.utils.set_random_seed(0)
    model = deepface(224)  # a weights-only file cannot say its input size: VGG-Face's 224
    path = tmp_path / "vgg_face_weights.h5"
    with h5py.File(path, "w") as f:  # Keras 2's save_weights layout, as deepface's file: weights, no configuration
        save_weights_to_hdf5_group(f, model)
    rgb = rgb_images(2, 224)
    bgr = rgb[..., ::-1] - np.array(VGGFACE_MEAN_PIXEL, dtype=np.float32)  # the Oxford release's input
    logits = keras.Model(model.inputs, model.layers[-3].output).predict(bgr, verbose=0).reshape(2, -1)
    loaded = load_model(path)
    assert loaded.model.describe() == "VGG-16 (net D)" and loaded.model.num_classes == 2622
    x = torch.from_numpy(rgb.transpose(0, 3, 1, 2).astype(np.uint8))
    with torch.no_grad():
        mine = loaded.model(normalize(x, loaded.mean, loaded.std)).numpy()
    np.testing.assert_allclose(mine, logits, rtol=1e-4, atol=1e-5 * np.abs(logits).max())
    # the face descriptor: relu7 (Caffe's in-place ReLU leaves it in the blob named fc7; deepface's fc7 output),
    # and vggnet's fc7 before the ReLU, computed by a Keras layer holding fc7's weights without the activation
    fc6 = keras.Model(model.inputs, model.layers[-6].output).predict(bgr, verbose=0)
    linear = keras.layers.Conv2D(64, (1, 1))
    linear.build(fc6.shape)
    linear.set_weights(model.layers[-5].get_weights())
    before = keras.ops.convert_to_numpy(linear(fc6)).reshape(2, -1)
    faces = tmp_path / "faces" / "someone"
    faces.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rgb[i].astype(np.uint8)).save(faces / f"{i}.png")
    for layer, expected in (("relu7", np.maximum(before, 0)), ("fc7", before)):
        out = tmp_path / f"{layer}.safetensors"
        args = ["features", "--weights", str(path), "--data", str(tmp_path / "faces"), "--layer", layer, "--no-flip"]
        assert main([*args, "--scales", "224", "--out", str(out)]) == 0
        got = load_features(out)
        order = np.argsort([os.path.basename(f) for f in got.files])
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(got.features.numpy()[order], expected, rtol=1e-4, atol=1e-5)


def test_bad_keras_files_are_one_sentence_and_nothing_is_written(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    cases = {}
    mobilenet = keras.applications.MobileNet(weights=None, alpha=0.25, input_shape=(64, 64, 3), classes=3)
    mobilenet.save(tmp_path / "mobilenet.h5")
    cases["mobilenet.h5"] = r"convolution conv1 .* is not a VGG's|is not a VGG"
    with h5py.File(tmp_path / "data.h5", "w") as f:  # an HDF5 file of another kind: no weights
        f["images"] = np.zeros((2, 3))
    cases["data.h5"] = r"holds no Keras weights"
    vgg = keras.applications.VGG16(weights=None, include_top=True, input_shape=(32, 32, 3), classes=1000)
    vgg.save(tmp_path / "claims.h5")
    with h5py.File(tmp_path / "claims.h5", "a") as f:  # a configuration that claims 2,622 classes
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][-1]["config"]["units"] = 2622
        f.attrs["model_config"] = json.dumps(config)
    cases["claims.h5"] = r"predictions declares 2,622 units but its weights hold 1,000"
    data = (tmp_path / "claims.h5").read_bytes()
    (tmp_path / "truncated.h5").write_bytes(data[: len(data) // 3])
    cases["truncated.h5"] = r"truncated or not HDF5"
    vgg.save(tmp_path / "whole.keras")
    (tmp_path / "truncated.keras").write_bytes((tmp_path / "whole.keras").read_bytes()[:5000])
    cases["truncated.keras"] = r"truncated or not a zip"
    for name, pattern in cases.items():
        out = tmp_path / f"{name}.safetensors"
        assert main(["convert", str(tmp_path / name), "--out", str(out)]) == 2, name
        err = capsys.readouterr().err
        assert re.search(pattern, err) and err.count("\n") == 1, (name, err)
        assert not out.exists()
    names = tmp_path / "names.txt"
    names.write_text("".join(f"id{i}\n" for i in range(2622)))
    args = ["convert", str(tmp_path / "whole.keras"), "--classes", str(names), "--out", str(tmp_path / "x.safetensors")]
    assert main(args) == 2
    assert "2,622 class names given for weights of 1,000 classes" in capsys.readouterr().err
