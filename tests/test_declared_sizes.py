"""Files that declare more than they hold: a tensor whose declared shape no VGG has, or whose bytes the file does not
hold (a compressed HDF5 dataset, a zlib-compressed MATLAB variable, a protobuf blob, an ONNX initialiser), is one
sentence on the command line (exit 2), refused before its data is read: memory stays near what the imports take."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib

import h5py
import numpy as np
import onnx
import pytest
from caffe_files import field, varint
from scipy.io import savemat
from test_matconvnet import CAFFE_MEAN_BGR, caffe_net, mat_layers, write_v73
from test_onnx_files import CONFIG, keras_style_graph, vgg_weights

import vggnet
from vggnet.cli import main

# Each command run in one subprocess, one after the other: its exit code, what it said, and how far the peak memory
# (resident) has grown beyond what importing vggnet's command line took.
MEASURED = """
import contextlib, io, json, resource, sys
from vggnet.cli import main
before, found = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, []
for args in json.loads(sys.argv[1]):
    with contextlib.redirect_stderr(io.StringIO()) as said:
        code = main(args)
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
    found.append({"code": code, "err": said.getvalue().strip(), "grew_mb": grew})
print(json.dumps(found))
"""
GROWTH_MB = 300  # what refusals may take beyond the imports (the files below declare 3 GB and more)


def said(err: str, *words) -> None:
    """One line on stderr, naming ``words``, no traceback."""
    assert len(err.splitlines()) == 1 and "unexpected" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def refused(path, *words, capsys, command="info"):
    """``vggnet info FILE`` (or ``convert``): exit 2, one line naming ``words``, nothing written."""
    args = [command, str(path)] + (["--out", str(path.parent / "out.safetensors")] if command == "convert" else [])
    assert main(args) == 2
    said(capsys.readouterr().err.strip(), *words)
    assert not (path.parent / "out.safetensors").exists()


# -- Keras ---------------------------------------------------------------------------------------------------------
def keras2_file(path, kernel_shape):
    """A Keras 2 weights file of one layer whose kernel declares ``kernel_shape``: gzip chunks, of which only the
    first is written (a few kB on disk)."""
    chunks = (3, 3, 3, 64) if len(kernel_shape) == 4 else (64, 64)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1"]
        g = f.create_group("block1_conv1")
        g.attrs["weight_names"] = [b"block1_conv1/kernel:0", b"block1_conv1/bias:0"]
        kernel = g.create_dataset("block1_conv1/kernel:0", shape=kernel_shape, dtype="f4", compression="gzip",
                                  chunks=chunks)  # fmt: skip
        kernel[tuple(slice(0, c) for c in chunks)] = np.random.default_rng(0).random(chunks)
        g.create_dataset("block1_conv1/bias:0", data=np.zeros(64, "f4"))
    return path


def test_a_keras_kernel_declaring_a_billion_filters_is_a_sentence_not_a_memory_error(tmp_path, capsys):
    path = keras2_file(tmp_path / "huge.h5", (3, 3, 3, 2**30))
    assert path.stat().st_size < 20_000
    refused(path, "huge.h5: layer block1_conv1's block1_conv1/kernel:0 declares a 3x3 kernel from 3 to 1,073,741,824",
            capsys=capsys)  # fmt: skip
    dense = keras2_file(tmp_path / "dense.h5", (2**20, 2**20))
    refused(dense, "declares 1048576 x 1048576", "more than the largest tensor of any VGG", capsys=capsys)


def test_a_keras_kernel_whose_compressed_bytes_cannot_hold_it_is_refused_before_it_is_read(tmp_path, capsys):
    path = keras2_file(tmp_path / "sparse.h5", (3, 3, 512, 4096))  # 75 MB declared, one 7 kB chunk stored
    refused(path, "declares 18,874,368 values (75,497,472 bytes)", "compressed, at most", command="convert",
            capsys=capsys)  # fmt: skip


def keras3_file(path, shape):
    """A Keras 3 ``.keras`` zip whose one layer's first variable declares ``shape``, nothing written."""
    weights = io.BytesIO()
    with h5py.File(weights, "w") as f:
        group = f.create_group("layers/conv2d/vars")
        group.create_dataset("0", shape=shape, dtype="f4", chunks=(3, 3, 3, 64), compression="gzip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
        z.writestr("model.weights.h5", weights.getvalue())
    return path


def test_a_keras_3_file_is_checked_the_same_way_inside_its_zip(tmp_path, capsys):
    path = keras3_file(tmp_path / "model.keras", (3, 3, 3, 2**30))
    refused(path, "model.keras: layer conv2d's 0 declares a 3x3 kernel from 3 to 1,073,741,824", capsys=capsys)


# -- MatConvNet ----------------------------------------------------------------------------------------------------
def mat_content():
    net, names = caffe_net("A"), np.empty((1, 5), dtype=object)
    names[0, :] = list("abcde")
    meta = {"normalization": {"averageImage": CAFFE_MEAN_BGR[::-1].reshape(1, 1, 3).copy()},
            "classes": {"description": names}}  # fmt: skip
    return {"layers": mat_layers(net, False), "meta": meta}


def v73_declaring(path, shape, chunks):
    """A v7.3 file whose first filter bank is a gzip dataset declaring ``shape`` (MATLAB's order), one chunk
    written."""
    write_v73(path, mat_content())
    with h5py.File(path, "a") as f:
        weights = f[f["layers"][()].ravel(order="F")[0]]["weights"]
        refs = weights[()].ravel(order="F")
        name = f[refs[0]].name
        del f[name]
        big = f.create_dataset(name, shape=shape[::-1], dtype="f4", chunks=(1, 1, *chunks), compression="gzip")
        big[0, 0, : chunks[0], : chunks[1]] = 1.0
        refs[0] = big.ref
        weights[...] = refs.reshape(weights.shape, order="F")
    return path


def test_a_v73_filter_bank_declaring_3_gb_in_a_few_kb_of_gzip_is_refused_unread(tmp_path, capsys):
    path = v73_declaring(tmp_path / "huge.mat", (2048, 2048, 3, 64), (256, 256))
    assert path.stat().st_size < 300_000
    refused(path, "huge.mat: layer conv1_1's filters declares a 2048x2048 kernel", capsys=capsys)
    path = v73_declaring(tmp_path / "sparse.mat", (3, 3, 512, 4096), (3, 3))  # a VGG's shape, 75 MB, one chunk
    refused(path, "layers{1}.weights{1} declares 18,874,368 values", "compressed, at most", capsys=capsys)


def v5_declaring(path, dims, compress=True):
    """A MATLAB v5 file (scipy's savemat) whose conv1_1 filters (3 x 3 x 3 x 4) declare ``dims`` instead, their
    data left as it is: the dimensions patched inside the (zlib-compressed) variable."""
    savemat(str(path), mat_content(), do_compression=compress)
    data, out, pos = path.read_bytes(), bytearray(), 128
    out += data[:128]
    old, new = struct.pack("<II4i", 5, 16, 3, 3, 3, 4), struct.pack("<II4i", 5, 16, *dims)
    while pos < len(data):
        kind, nbytes = struct.unpack("<II", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + nbytes]
        body = zlib.compress(zlib.decompress(body).replace(old, new, 1)) if kind == 15 else body.replace(old, new, 1)
        out += struct.pack("<II", kind, len(body)) + body
        pos += 8 + nbytes
    path.write_bytes(bytes(out))
    return path


@pytest.mark.parametrize("compress", [True, False], ids=["zlib", "stored"])
def test_a_v5_variable_declaring_more_than_it_holds_is_refused_before_scipy_reads_it(tmp_path, compress, capsys):
    assert vggnet.network.weights.read_weights(v5_declaring(tmp_path / "same.mat", (3, 3, 3, 4), compress)).state
    huge = v5_declaring(tmp_path / "huge.mat", (2048, 2048, 3, 64), compress)
    words = "huge.mat: layers{1}.weights{1} declares 2048 x 2048 x 3 x 64, 805,306,368 values"
    refused(huge, words, capsys=capsys)
    short = v5_declaring(tmp_path / "short.mat", (3, 3, 512, 4096), compress)
    words = "layers{1}.weights{1} declares 18,874,368 values (75,497,472 bytes) but the file holds 432 bytes"
    refused(short, words, capsys=capsys)


# -- Caffe and ONNX ------------------------------------------------------------------------------------------------
def caffemodel(path, dims):
    """A .caffemodel whose conv1_1 blob declares ``dims`` and holds 27 floats."""
    blob = field(7, field(1, b"".join(varint(d) for d in dims))) + field(5, np.ones(27, "<f4").tobytes())
    path.write_bytes(field(100, field(1, b"conv1_1") + field(2, b"Convolution") + field(7, blob)))
    return path


def test_a_caffe_blob_declaring_more_than_it_holds_is_a_sentence(tmp_path, capsys):
    huge = caffemodel(tmp_path / "huge.caffemodel", [2**40, 2**40, 3, 3])
    refused(huge, "a blob of layer conv1_1 declares", "more than the largest", capsys=capsys)
    short = caffemodel(tmp_path / "short.caffemodel", [64, 3, 3, 3])
    refused(short, "holds 27 values for its shape (64, 3, 3, 3) (1,728)", command="convert", capsys=capsys)


def onnx_declaring(path, dims):
    """A small VGG graph whose first initialiser declares ``dims`` over the raw bytes of an 8 x 3 x 3 x 3 kernel."""
    convs, fcs = vgg_weights(CONFIG)
    model = onnx.load(str(keras_style_graph(path.with_name("good.onnx"), CONFIG, convs, fcs)))
    model.graph.initializer[0].dims[:] = dims
    onnx.save(model, str(path))
    return path


def test_an_onnx_initialiser_declaring_more_than_it_holds_is_a_sentence(tmp_path, capsys):
    words = "the initialiser conv0/kernel declares 1073741824 x 3 x 3 x 3"
    refused(onnx_declaring(tmp_path / "huge.onnx", [2**30, 3, 3, 3]), words, command="convert", capsys=capsys)


# -- every reader, as a user meets it ------------------------------------------------------------------------------
def test_every_reader_refuses_huge_declarations_in_a_subprocess_with_its_memory_bounded(tmp_path):
    """The files of the issue (a v7.3 filter bank declaring 3 GB in a few kB of gzip, a Keras kernel declaring 2^30
    filters) and one of each other reader, through the command line in one process: exit 2, one sentence each,
    peak memory within a few hundred MB of the imports (the v7.3 file took 9.9 GB before these checks)."""
    files = {
        "huge.h5": (keras2_file(tmp_path / "huge.h5", (3, 3, 3, 2**30)), "declares a 3x3 kernel"),
        "model.keras": (keras3_file(tmp_path / "model.keras", (3, 3, 3, 2**30)), "declares a 3x3 kernel"),
        "v73.mat": (v73_declaring(tmp_path / "v73.mat", (2048, 2048, 3, 64), (256, 256)), "a 2048x2048 kernel"),
        "v5.mat": (v5_declaring(tmp_path / "v5.mat", (2048, 2048, 3, 64)), "805,306,368 values"),
        "vgg.caffemodel": (caffemodel(tmp_path / "vgg.caffemodel", [2**40, 2**40, 3, 3]), "more than the largest"),
        "vgg.onnx": (onnx_declaring(tmp_path / "vgg.onnx", [2**30, 3, 3, 3]), "1073741824 x 3 x 3 x 3"),
    }
    commands = [["info", name] for name in files] + [["convert", "v73.mat", "--out", "v73.safetensors"]]
    run = subprocess.run([sys.executable, "-c", MEASURED, json.dumps(commands)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    for (_, name, *_), result in zip(commands, json.loads(run.stdout)):
        assert result["code"] == 2, (name, result)
        said(result["err"], name, files[name][1])
        assert result["grew_mb"] < GROWTH_MB, (name, result)
    assert not (tmp_path / "v73.safetensors").exists()
