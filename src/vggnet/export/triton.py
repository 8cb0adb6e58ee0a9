"""One interface for ``vggnet serve`` and the Triton repository ``vggnet export --triton`` writes.

Both describe a model with the same Triton model configuration (:func:`model_config`): the FP32 input ``image``
(C x crop x crop, normalised as the parameters say), the output ``probabilities`` (the soft-max posteriors, averaged
with the mirror image's where ``mirror``, with the class labels) and dynamic batching; the service adds an optional
BYTES input ``image_bytes`` (encoded images, brought to the model's geometry by the service), which Triton's
onnxruntime and openvino backends could not decode. The service answers the configuration as JSON (Triton's
``/v2/models/NAME/config`` and gRPC's ``ModelConfig``), the repository holds it as ``config.pbtxt``: the same
dictionary, checked against Triton's own ``ModelConfig`` schema (tritonclient's protobuf) either way.

The repository's model computes what the service does: :func:`triton_graph` wraps the exported ONNX graph (float32
or int8) so that it takes ``image`` and gives ``probabilities`` (the batch and its mirror image through the net at
once, soft-max, the two averaged).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..base.files import Staging, folder_lock
from ..inference.loading import Loaded

IMAGE, IMAGE_BYTES, PROBABILITIES, LABELS = "image", "image_bytes", "probabilities", "labels.txt"
PLATFORMS = {  # what runs the model: Triton's platform and backend names
    "pytorch_libtorch": ("pytorch_libtorch", "pytorch"),
    "onnxruntime_onnx": ("onnxruntime_onnx", "onnxruntime"),
    "openvino": ("", "openvino"),
}


def model_config(
    name: str,
    loaded: Loaded,
    platform: str,
    max_batch: int = 16,
    queue_delay_us: int = 5000,
    mirror: bool = True,
    encoded_input: bool = False,
    warmup: bool = False,
) -> dict[str, Any]:
    """Triton's model configuration of ``loaded`` as JSON (Triton's field names and enum names; numbers as
    numbers, as Triton's HTTP endpoint answers them). ``encoded_input``: the optional ``image_bytes`` input (the
    service's); ``warmup``: a ``model_warmup`` entry for a batch of 1 and one of ``max_batch`` (zeros)."""
    channels, crop = loaded.model.in_channels, loaded.crop
    plat, backend = PLATFORMS[platform]
    inputs = [{"name": IMAGE, "data_type": "TYPE_FP32", "format": "FORMAT_NONE", "dims": [channels, crop, crop]}]
    if encoded_input:
        inputs.append({"name": IMAGE_BYTES, "data_type": "TYPE_STRING", "dims": [1], "optional": True})
    config: dict[str, Any] = {
        "name": name,
        "platform": plat,
        "backend": backend,
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": max_batch,
        "input": inputs,
        "output": [
            {"name": PROBABILITIES, "data_type": "TYPE_FP32", "dims": [len(loaded.classes)], "label_filename": LABELS}
        ],
        "dynamic_batching": {"max_queue_delay_microseconds": queue_delay_us},
        "instance_group": [{"name": name, "kind": "KIND_CPU", "count": 1}],
        "parameters": {
            f"vggnet_{key}": {"string_value": json.dumps(value)}
            for key, value in {
                "mean": loaded.mean,
                "std": loaded.std,
                "scale": loaded.default_scale,
                "pad": loaded.pad,
                "crop": crop,
                "mirror": mirror,
            }.items()
        },
    }
    if not plat:
        del config["platform"]
    if warmup:
        image = {"data_type": "TYPE_FP32", "dims": [channels, crop, crop], "zero_data": True}
        config["model_warmup"] = [
            {"name": f"batch {n}", "batch_size": n, "inputs": {IMAGE: image}} for n in sorted({1, max_batch})
        ]
    check_config(config)
    return config


def as_proto(config: dict[str, Any]):
    """``config`` as Triton's ``ModelConfig`` message (tritonclient's protobuf); ``ValueError`` if it is not one."""
    try:
        from google.protobuf import json_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as err:
        raise ValueError(
            f"Triton's model configuration needs tritonclient[grpc] (pip install 'vggnet[triton]'): {err}"
        ) from None
    try:
        return json_format.ParseDict(config, model_config_pb2.ModelConfig())
    except json_format.ParseError as err:
        raise ValueError(f"the Triton config is not Triton's ModelConfig: {err}") from None


def _schema():
    """Triton's ``model_config`` protobuf module, shipped in tritonclient's gRPC package."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as err:
        needs = "Triton's model configuration needs tritonclient[grpc] (pip install 'vggnet[triton]')"
        raise ValueError(f"{needs}: {err}") from None
    return model_config_pb2


def check_config(config: dict[str, Any]) -> None:
    as_proto(config)


def config_pbtxt(config: dict[str, Any]) -> str:
    """The configuration as Triton reads it from a repository (protobuf's text format)."""
    from google.protobuf import text_format

    return text_format.MessageToString(as_proto(config))


def check_triton_config(text: str) -> None:
    """Parse ``config.pbtxt`` text with Triton's own schema; ``ValueError`` if it does not parse."""
    from google.protobuf import text_format

    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as err:
        raise ValueError(
            f"checking a Triton config needs tritonclient[grpc] (pip install 'vggnet[triton]'): {err}"
        ) from None
    try:
        text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as err:
        raise ValueError(f"the Triton config does not parse as Triton's ModelConfig: {err}") from None


def triton_graph(onnx_path: str | os.PathLike, out: str | os.PathLike, classes: int, mirror: bool = True) -> Path:
    """The exported ONNX model (``image`` -> class ``scores``, float32 or int8) as the service's interface:
    ``image`` -> ``probabilities``, the soft-max posteriors, averaged with the mirror image's where ``mirror`` (the
    batch and its mirror run through the net as one batch of twice the size)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    if [i.name for i in graph.input] != [IMAGE] or "scores" not in [o.name for o in graph.output]:
        raise ValueError(f"{onnx_path} is not vggnet's exported model (input image, output scores)")
    for node in graph.node:  # the net now reads the batch its wrapper makes
        node.input[:] = ["vggnet_batch" if name == IMAGE else name for name in node.input]
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    constants, head, tail = _mirrored(classes, opset) if mirror else _plain()
    graph.initializer.extend(helper.make_tensor(n, TensorProto.INT64, [len(v)], v) for n, v in constants.items())
    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, ["batch", classes]))
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return Path(out)


def _plain():
    from onnx import helper

    head = [helper.make_node("Identity", [IMAGE], ["vggnet_batch"])]
    return {}, head, [helper.make_node("Softmax", ["scores"], [PROBABILITIES], axis=1)]


def _mirrored(classes: int, opset: int):
    """The batch and its mirror image (a Slice backwards along the width) as one batch; the posteriors of the two
    halves averaged."""
    from onnx import helper

    constants = {"vggnet_start": [-1], "vggnet_end": [-(2**62)], "vggnet_axis": [3], "vggnet_step": [-1]}
    constants["vggnet_pair"] = [2, -1, classes]
    flip = ["vggnet_start", "vggnet_end", "vggnet_axis", "vggnet_step"]
    head = [
        helper.make_node("Slice", [IMAGE, *flip], ["vggnet_mirror"]),
        helper.make_node("Concat", [IMAGE, "vggnet_mirror"], ["vggnet_batch"], axis=0),
    ]
    if opset >= 18:  # ReduceMean's axes became an input
        constants["vggnet_first"] = [0]
        mean = helper.make_node("ReduceMean", ["vggnet_pairs", "vggnet_first"], [PROBABILITIES], keepdims=0)
    else:
        mean = helper.make_node("ReduceMean", ["vggnet_pairs"], [PROBABILITIES], axes=[0], keepdims=0)
    tail = [
        helper.make_node("Softmax", ["scores"], ["vggnet_posteriors"], axis=1),
        helper.make_node("Reshape", ["vggnet_posteriors", "vggnet_pair"], ["vggnet_pairs"]),
        mean,
    ]
    return constants, head, tail


def write_triton(
    loaded: Loaded,
    onnx_path: str | os.PathLike,
    repo: str | os.PathLike,
    name: str = "vggnet",
    max_batch: int = 16,
    backend: str = "onnxruntime",
    mirror: bool = True,
) -> Path:
    """``repo/name/`` as a Triton model repository: ``1/model.onnx`` (onnxruntime backend) or ``1/model.xml`` and
    ``1/model.bin`` (openvino backend), the exported ONNX model at ``onnx_path`` (float32 or int8) wrapped to the
    service's interface (:func:`triton_graph`), ``config.pbtxt`` (checked against Triton's schema before anything is
    written) and ``labels.txt``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"the Triton model name must be a plain folder name, got {name!r}")
    platform = "onnxruntime_onnx" if backend == "onnxruntime" else "openvino"
    config = config_pbtxt(model_config(name, loaded, platform, max_batch, mirror=mirror))
    check_triton_config(config)
    folder = Path(repo) / name
    files = ["1/model.onnx"] if backend == "onnxruntime" else ["1/model.xml", "1/model.bin"]
    with folder_lock(folder, "Triton model folder"), Staging(folder) as stage:
        wrapped = triton_graph(onnx_path, stage.path("1/model.onnx.tmp"), len(loaded.classes), mirror)
        if backend == "onnxruntime":
            shutil.move(wrapped, stage.path("1/model.onnx"))
        else:
            from .metadata import save_ir

            save_ir(wrapped, stage.path("1/model.xml"))
            os.unlink(wrapped)
        stage.path("config.pbtxt").write_text(config)
        stage.path(LABELS).write_text("\n".join(loaded.classes) + "\n")
        stage.commit([*files, "config.pbtxt", LABELS], replaces=["1/model.onnx", "1/model.xml", "1/model.bin"])
    return folder
