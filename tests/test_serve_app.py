"""The service's protocol and its error bodies, in-process: the app that ``vggnet serve`` runs (the service's, with
the inside page mounted on it: vggnet.commands.serve.service_app), spoken to through FastAPI's TestClient (the
lifespan runs: the batcher is up), with tritonclient's own encoder and decoder for the binary protocol. Fast;
tests/test_serve.py starts the command itself."""

import base64
import gzip
import io
import json
import re
import threading
import time
import zlib

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from helpers import SERVED_CLASSES as CLASSES
from helpers import png
from PIL import Image

from vggnet.commands.serve import service_app
from vggnet.serving.app import create_app
from vggnet.serving.settings import ServeSettings
from vggnet.web.engine import Engine


@pytest.fixture(scope="module")
def local(weights):
    """The same model in this process, to say what the service must answer."""
    return Engine.load(str(weights))


@pytest.fixture(scope="module")
def client(weights):
    settings = ServeSettings(max_batch=8, max_wait_ms=50, max_body=300_000)
    with TestClient(service_app(Engine.load(str(weights)), settings)) as c:
        wait_until_ready(c)
        yield c


def wait_until_ready(c: TestClient) -> None:
    """The model warms up (a batch of 1 and one of max_batch) after the app starts; ready says when it is done."""
    deadline = time.monotonic() + 60
    while c.get("/v2/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "the model never became ready"
        time.sleep(0.01)


def expected_top(local, image: bytes) -> list[str]:
    probs = local.classify(local.preprocess(image)[None])[0]
    return [CLASSES[i] for i in probs.argsort(descending=True)]


def test_health_metadata_and_both_v2_encodings(client, local):
    assert client.get("/v2/health/live").json() == {"live": True} and client.get("/v2/health/ready").json()["ready"]
    extensions = ["binary_tensor_data", "classification", "model_configuration", "statistics"]
    assert client.get("/v2").json()["extensions"] == extensions  # exactly what is implemented
    meta = client.get("/v2/models/vggnet").json()
    assert meta["inputs"][0] == {"name": "image", "datatype": "FP32", "shape": [-1, 3, 32, 32]}
    assert meta["parameters"]["classes"] == CLASSES and (meta["parameters"]["scale"], meta["parameters"]["crop"]) == (
        40, 32)  # fmt: skip
    x = torch.randn(2, 3, 32, 32)
    as_json = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [2, 3, 32, 32], "data": x.flatten().tolist()}]}
    got = client.post("/v2/models/vggnet/infer", json=as_json).json()["outputs"][0]
    np.testing.assert_allclose(np.array(got["data"]).reshape(2, 3), local.classify(x).numpy(), rtol=1e-4, atol=1e-6)


def test_binary_tensors_and_classification_as_tritonclient_encodes_them(client, local):
    import tritonclient.http as triton

    x = torch.randn(3, 3, 32, 32)
    tensor = triton.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x.numpy())  # binary, tritonclient's default
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=True)]
    body, header = triton.InferenceServerClient.generate_request_body([tensor], outputs=outputs)
    answer = client.post("/v2/models/vggnet/infer", content=body,
                         headers={"Inference-Header-Content-Length": str(header)})  # fmt: skip
    length = int(answer.headers["Inference-Header-Content-Length"])
    parsed = triton.InferenceServerClient.parse_response_body(answer.content, header_length=length)
    np.testing.assert_allclose(parsed.as_numpy("probabilities"), local.classify(x).numpy(), rtol=1e-4, atol=1e-6)
    top = [triton.InferRequestedOutput("probabilities", class_count=2)]
    body, header = triton.InferenceServerClient.generate_request_body([tensor], outputs=top)
    answer = client.post("/v2/models/vggnet/infer", content=body,
                         headers={"Inference-Header-Content-Length": str(header)})  # fmt: skip
    length = int(answer.headers["Inference-Header-Content-Length"])
    parsed = triton.InferenceServerClient.parse_response_body(answer.content, header_length=length)
    score, index, label = parsed.as_numpy("probabilities")[0, 0].decode().split(":")
    assert label == CLASSES[int(index)] and int(index) == int(local.classify(x)[0].argmax())


def test_predict_and_explain_take_an_image_file(client, local):
    image = png(64, 48, 3)
    by_form = client.post("/predict", files={"file": ("x.png", image, "image/png")})
    raw = client.post("/predict?top=2", content=image)
    assert by_form.status_code == raw.status_code == 200, by_form.text
    assert [t["class"] for t in by_form.json()["top"]] == expected_top(local, image)
    assert by_form.json()["top"][:2] == raw.json()["top"] and len(raw.json()["top"]) == 2
    why = client.post("/explain", files={"file": ("x.png", image, "image/png")}).json()
    assert why["class"] == by_form.json()["top"][0]["class"] and why["size"] == [40, 53]  # 48 x 64 at Q = 40
    for key in ("cam", "dense"):
        picture = Image.open(io.BytesIO(base64.b64decode(why[key].split(",", 1)[1])))
        assert picture.size == (53, 40)


def bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")  # 400 million pixels in a few kB
    return buffer.getvalue()


def v2_image(shape, datatype="FP32", data=None):
    count = int(np.prod(shape))
    return {
        "json": {"inputs": [{"name": "image", "datatype": datatype, "shape": shape, "data": data or [0.0] * count}]}
    }


GZIP = {"Content-Encoding": "gzip"}
ERRORS = [
    ("post", "/predict", {"content": b"x" * 400_000}, 413, "more than the 300,000 allowed"),
    ("post", "/predict", {"content": b"plain text, not a picture"}, 415, "not an image"),
    ("post", "/predict", {"content": png(64, 64, 5)[:300]}, 400, "not a usable image"),
    ("post", "/predict", {"content": bomb()}, 413, "too many pixels to decode safely"),
    ("post", "/predict", {"content": b""}, 400, "empty file"),
    ("post", "/predict", {"files": {"other": ("x.png", png(32, 32, 1))}}, 400, 'field named "file"'),
    ("post", "/predict?top=0", {"content": png(32, 32, 1)}, 400, "top must be in"),
    ("post", "/predict?top=many", {"content": png(32, 32, 1)}, 400, "bad query.top"),
    ("post", "/v2/models/vggnet/infer", {"content": b"{not json"}, 400, "not JSON"),
    ("post", "/v2/models/vggnet/infer", {"json": {"inputs": []}}, 400, '"inputs": a list of tensors'),
    ("post", "/v2/models/vggnet/infer", v2_image([1, 3, 16, 16]), 400, r"shape \[N, 3, 32, 32\]"),
    ("post", "/v2/models/vggnet/infer", v2_image([1, 3, 32, 32], "INT64", [0] * 3072), 400, "must be FP32"),
    ("post", "/v2/models/vggnet/infer", v2_image([1, 3, 32, 32], data=[0.0] * 5), 400, "do not make a FP32 tensor"),
    ("post", "/v2/models/vggnet/versions/7/infer", v2_image([1, 3, 32, 32]), 404, "unknown version '7'"),
    ("get", "/v2/models/vggnet/versions/2/config", {}, 404, "unknown version '2' of model 'vggnet'; it has version 1"),
    ("post", "/v2/models/vggnet/infer", {"content": b"\x1f\x8bnot gzip", "headers": GZIP}, 400, "not valid gzip"),
    ("post", "/v2/models/vggnet/infer", {"content": b"{}", "headers": {"Content-Encoding": "br"}}, 415, "'br'"),
    ("post", "/v2/models/vggnet/infer", {"content": gzip.compress(b" " * 400_000), "headers": GZIP}, 413, "inflates"),
    ("post", "/v2/models/resnet/infer", {"json": {"inputs": []}}, 404, "unknown model 'resnet'"),
    ("get", "/v2/models/resnet", {}, 404, "unknown model"),
    ("get", "/nowhere", {}, 404, "no such endpoint"),
    ("get", "/predict", {}, 405, "GET is not allowed"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"), ERRORS, ids=[f"{e[3]}-{e[1]}" for e in ERRORS]
)
def test_every_bad_request_is_a_json_sentence_with_its_status(client, method, path, kwargs, status, message):
    answer = getattr(client, method)(path, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json" and re.search(message, answer.json()["error"])


def frames(kind: str) -> bytes:
    """A two-frame image of ``kind`` whose first frame is mostly red and the second blue."""
    first, second = Image.new("RGB", (60, 40), (230, 20, 20)), Image.new("RGB", (60, 40), (20, 20, 230))
    buffer = io.BytesIO()
    first.save(buffer, kind, save_all=True, append_images=[second], **({"duration": 100} if kind != "TIFF" else {}))
    return buffer.getvalue()


def single(mode: str, kind: str = "PNG", **save) -> bytes:
    image = Image.new("RGB", (60, 40), (230, 20, 20)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, kind, **save)
    return buffer.getvalue()


def sixteen_bit() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 60), 40000, dtype=np.uint16)).save(buffer, "PNG")
    return buffer.getvalue()


KINDS = {
    "animated GIF": frames("GIF"),
    "animated PNG": frames("PNG"),
    "animated WebP": frames("WEBP"),
    "multi-page TIFF": frames("TIFF"),
    "16-bit gray PNG": sixteen_bit(),
    "CMYK JPEG": single("CMYK", "JPEG"),
    "palette PNG": single("P"),
    "RGBA PNG": single("RGBA"),
    "gray+alpha PNG": single("LA"),
    "1-bit PNG": single("1"),
    "BMP": single("RGB", "BMP"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_image_is_classified_by_its_first_frame(client, local, kind):
    from vggnet.data.images import decode_bytes

    answer = client.post("/predict", content=KINDS[kind])
    assert answer.status_code == 200, answer.text
    decoded = decode_bytes(KINDS[kind])
    assert decoded.shape == (3, 40, 60) and decoded.dtype == torch.uint8
    if kind not in ("16-bit gray PNG", "1-bit PNG", "gray+alpha PNG"):  # colour kinds: the first frame, red
        assert decoded[0].float().mean() > 150 and decoded[2].float().mean() < 80, kind


def test_a_photo_is_classified_the_right_way_up(client, local):
    """A phone stores a portrait photo as a landscape JPEG with an EXIF orientation; what it shows is what counts."""
    upright = Image.new("RGB", (40, 60), (0, 0, 0))
    upright.paste((255, 255, 255), (0, 0, 40, 20))  # white at the top of the photo as shown
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 60 x 40 on disk, white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to display
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    from vggnet.data.images import decode_bytes

    decoded = decode_bytes(buffer.getvalue())
    assert decoded.shape == (3, 60, 40) and decoded[:, :20].float().mean() > 200 and decoded[:, 25:].float().mean() < 50
    from PIL import ImageOps

    shown = torch.from_numpy(np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))))).permute(
        2, 0, 1
    )
    assert (decoded.int() - shown.int()).abs().max() <= 8  # as Pillow shows it, up to JPEG decoders' rounding
    answer = client.post("/predict", content=buffer.getvalue())
    plain = io.BytesIO()
    upright.save(plain, "JPEG", quality=95)
    assert answer.status_code == 200 and [t["class"] for t in answer.json()["top"]] == expected_top(
        local, plain.getvalue()
    )


def test_concurrent_requests_share_forward_passes_and_get_their_own_answers(client, local):
    def batches() -> tuple[float, float]:
        text = client.get("/metrics").text
        values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("vggnet_b")}
        return values["vggnet_batch_size_count"], values["vggnet_batch_size_sum"]

    before = batches()
    images = [png(40 + i, 40, 100 + i) for i in range(12)]
    answers: dict[int, dict] = {}

    def ask(i: int) -> None:
        answers[i] = client.post("/predict?top=3", content=images[i]).json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, image in enumerate(images):  # each caller got the answer for its own image
        probs = local.classify(local.preprocess(image)[None])[0].sort(descending=True).values.tolist()
        assert [t["probability"] for t in answers[i]["top"]] == pytest.approx(probs, abs=1e-5)
    count, total = (a - b for a, b in zip(batches(), before))
    assert total == 12 and count < 12  # fewer forward passes than requests: they were shared


def test_the_app_maps_each_part_s_errors_in_one_place():
    from vggnet.data.images import BadImage
    from vggnet.serving import errors
    from vggnet.serving.batcher import Overloaded
    from vggnet.web import engine
    from vggnet.web import errors as web_errors

    assert (
        errors.STATUS[Overloaded] == 503
        and errors.STATUS[TimeoutError] == 504
        and web_errors.BAD_IMAGE["format"] == 415
    )
    with open(engine.__file__) as f:
        text = f.read()
    assert not re.search(r"\b[45]\d\d\b", text) and "status" not in text  # the engine knows nothing of HTTP
    assert issubclass(BadImage, ValueError)


def test_the_model_configuration_is_tritons_and_the_statistics_count_in_tritons_units(client, local):
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2, service_pb2

    config = client.get("/v2/models/vggnet/config").json()
    assert client.get("/v2/models/vggnet/versions/1/config").json() == config
    parsed = json_format.ParseDict(config, model_config_pb2.ModelConfig())  # Triton's own schema
    assert parsed.max_batch_size == 8 and parsed.dynamic_batching.max_queue_delay_microseconds == 50_000
    assert [(i.name, list(i.dims), i.optional) for i in parsed.input] == [("image", [3, 32, 32], False),
                                                                           ("image_bytes", [1], True)]  # fmt: skip
    assert (parsed.output[0].name, list(parsed.output[0].dims)) == ("probabilities", [3])
    assert [w.batch_size for w in parsed.model_warmup] == [1, 8]
    before = client.get("/v2/models/vggnet/stats").json()["model_stats"][0]
    x = torch.randn(3, 3, 32, 32)
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [3, 3, 32, 32], "data": x.flatten().tolist()}]}
    for _ in range(2):
        assert client.post("/v2/models/vggnet/infer", json=body).status_code == 200
    assert client.post("/v2/models/vggnet/infer", json={"inputs": [{"name": "x"}]}).status_code == 400
    stats = client.get("/v2/models/vggnet/stats").json()
    json_format.ParseDict(stats, service_pb2.ModelStatisticsResponse())  # the fields and types of Triton's
    after = stats["model_stats"][0]
    assert after["inference_count"] - before["inference_count"] == 6  # images, as Triton counts
    assert 1 <= after["execution_count"] - before["execution_count"] <= 2
    phases, old = after["inference_stats"], before["inference_stats"]
    assert phases["success"]["count"] - old["success"]["count"] == 2 and phases["fail"]["count"] > old["fail"]["count"]
    for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert phases[phase]["count"] - old[phase]["count"] == 2 and phases[phase]["ns"] > old[phase]["ns"]
    assert phases["success"]["ns"] - old["success"]["ns"] >= phases["compute_infer"]["ns"] - old["compute_infer"]["ns"]
    assert client.get("/v2/models/stats").json() == client.get("/v2/models/vggnet/stats").json()


def test_compressed_bodies_random_floats_and_both_inputs_as_perf_analyzer_sends_them(client, local):
    x = torch.randn(2, 3, 32, 32)
    body = json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": [2, 3, 32, 32],
                                   "data": x.flatten().tolist()}]}).encode()  # fmt: skip
    for encoding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        answer = client.post("/v2/models/vggnet/infer", content=packed, headers={"Content-Encoding": encoding})
        assert answer.status_code == 200, answer.text
        got = np.array(answer.json()["outputs"][0]["data"]).reshape(2, 3)
        np.testing.assert_allclose(got, local.classify(x).numpy(), rtol=1e-4, atol=1e-6)
    bits = np.frombuffer(np.random.default_rng(0).bytes(4 * 3072), dtype=np.float32)  # perf_analyzer's random
    noise = {"name": "image", "datatype": "FP32", "shape": [1, 3, 32, 32], "data": [float(v) for v in bits]}
    junk = {"name": "image_bytes", "datatype": "BYTES", "shape": [1, 1], "data": [base64.b64encode(b"xyz").decode()]}
    answer = client.post("/v2/models/vggnet/infer", content=json.dumps({"inputs": [noise, junk]}))
    assert answer.status_code == 200, answer.text  # NaN in, NaN out, as in Triton; image taken over image_bytes
    assert len(answer.json()["outputs"][0]["data"]) == 3


def test_the_serve_command_mounts_the_inside_page_on_the_service_alone(client, weights):
    assert "Inside the network" in client.get("/inside").text
    (listed,) = client.get("/inside/models").json()["models"]
    assert listed["label"] == "vggnet" and listed["classes"] == len(CLASSES)
    view = client.post("/inside/look", content=png(48, 40, 1))
    assert view.status_code == 200 and view.json()["top"][0]["class"] in CLASSES
    bare = TestClient(create_app(Engine.load(str(weights)), ServeSettings()))  # the service knows no inside page
    assert bare.get("/inside").status_code == 404 and "no such endpoint" in bare.get("/inside").json()["error"]
