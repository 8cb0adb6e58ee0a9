"""Inside the network: receptive fields against the paper's arithmetic and against gradients, the learner's view
against the model's own activations, the page as a user meets it (in Chromium), and the offline folder."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from helpers import headless_chromium, png
from PIL import Image

import vggnet
from vggnet.base.configs import CONFIGS
from vggnet.cli import main
from vggnet.inside import kernels, look
from vggnet.network.fields import stacks

ROOT = Path(__file__).resolve().parents[1]


def by_hand(config: list) -> dict[str, tuple[int, int, int]]:
    """Field, jump and effective padding after each conv and pool, counted as one does on paper: a 3x3 layer adds
    2 jumps to the field and 1 to the padding, a 1x1 adds nothing, a 2x2 pool adds one jump and doubles it."""
    out, field, jump, pad, block, conv = {}, 1, 1, 0, 1, 0
    for item in config:
        if item == "M":
            field += jump
            jump *= 2
            out[f"pool{block}"] = (field, jump, pad)
            block, conv = block + 1, 0
        elif item != "LRN":
            conv += 1
            k = 3 if isinstance(item, int) else item[1]
            field, pad = field + (k - 1) * jump, pad + (k // 2) * jump
            out[f"conv{block}_{conv}"] = (field, jump, pad)
    return out


@pytest.mark.parametrize("letter", ["A", "E"])
def test_receptive_fields_are_the_papers_arithmetic(letter):
    model = vggnet.build(letter, pool_size=1, fc_width=8)
    got = {f.name: (f.field, f.jump, f.padding) for f in model.receptive_fields(224)}
    expected = by_hand(CONFIGS[letter])
    assert {name: got[name] for name in expected} == expected
    if letter == "E":  # as the paper's Sect. 2.3 reads: two 3x3 layers see 5 x 5, and pool1 6
        assert got["conv1_2"][0] == 5 and got["pool1"][0] == 6 and got["pool5"] == (268, 32, 118)
    shapes = {f.name: f.shape for f in model.receptive_fields(224)}
    assert shapes["pool5"] == (512, 7, 7) and shapes["conv3_1"] == (256, 56, 56)


def test_stacks_of_3x3_layers_and_their_weights():
    found = {s.block: s for s in stacks(CONFIGS["D"])}
    three = found[3]  # three 3x3 layers against one 7x7: 27 C^2 against 49 C^2
    assert (three.depth, three.field) == (3, 7) and three.stack_weights == 27 * 256**2
    assert three.single_weights == 49 * 256**2 and three.saving == pytest.approx(1 - 27 / 49)
    assert [s.depth for s in stacks(CONFIGS["C"])] == [2, 2, 2, 2, 2]  # 1x1 layers add no field


def test_info_prints_and_writes_the_fields(capsys):
    assert main(["info", "vgg16", "--size", "224"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"conv1_2 .* 5 +1 +2$", text, re.M) and "3 x 3x3 at C = 256 sees 7 x 7: 27C^2" in text
    assert main(["info", "E", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    layers = {entry["name"]: entry for entry in found["layers"]}
    assert (layers["pool1"]["field"], layers["pool5"]["jump"]) == (6, 32) and found["stacks"][2]["depth"] == 4


@pytest.mark.parametrize("name", ["relu3_1", "pool4"])
def test_the_gradient_of_one_unit_stays_inside_its_computed_field(name):
    torch.manual_seed(0)
    model = vggnet.build("A", width=1 / 8, pool_size=1, fc_width=8).double().eval()
    x = torch.randn(1, 3, 96, 96, dtype=torch.float64, requires_grad=True)
    activation = model.extract(x, name)[name]
    row, col = activation.shape[-2] // 2, activation.shape[-1] // 2
    activation[0, :, row, col].sum().backward()
    touched = x.grad[0].abs().sum(0) > 0
    field = next(f for f in model.receptive_fields(96) if f.name == name)
    top, left = field.origin(row, col)
    inside = torch.zeros_like(touched)
    inside[max(0, top) : top + field.field, max(0, left) : left + field.field] = True
    assert touched.any() and not (touched & ~inside).any()  # every pixel with a gradient lies within the field
    rows = touched.any(1).nonzero()
    assert rows.max() - rows.min() + 1 > field.field // 2  # and the field is not a loose overestimate


def test_the_view_shows_the_models_own_activations_and_where_they_peak():
    torch.manual_seed(0)
    model = vggnet.build("D", width=1 / 8, batch_norm=True, pool_size=1, fc_width=16, num_classes=4).eval()
    x = torch.randn(1, 3, 80, 96)
    view = look(model, x, ["a", "b", "c", "d"], channels=5)
    names = [b.layer for b in view.blocks]
    assert names == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    with torch.no_grad():
        expected = model.extract(x, names)
        scores = model(x)
    for block in view.blocks:
        maps = expected[block.layer][0]
        means = maps.mean((1, 2))
        assert [c.channel for c in block.channels] == means.topk(5).indices.tolist()  # the strongest channels
        for c in block.channels:
            torch.testing.assert_close(c.values, maps[c.channel])  # the same tensors, before any colouring
            r, col, value = c.peaks[0]
            assert value == pytest.approx(float(maps[c.channel].max()))
            assert c.regions[0] == (
                r * block.field.jump - block.field.padding,
                col * block.field.jump - block.field.padding,
                block.field.field,
            )
    assert view.top[0][1] == int(scores.argmax()) and view.cam.shape == (80, 96)
    assert [b.pooled for b in view.blocks][:2] == [([80, 96], [40, 48]), ([40, 48], [20, 24])]
    weight, inputs = kernels(model, "relu1_1", 2)
    assert weight.shape == (3, 3, 3) and inputs == [0, 1, 2]
    torch.testing.assert_close(weight, model.layer("conv1_1").weight[2])


@pytest.mark.parametrize("letter", ["A", "A-LRN", "B", "C", "E"])
def test_every_configuration_with_and_without_bn_gray_or_colour(letter):
    for bn, channels in ((False, 3), (True, 1)):
        model = vggnet.build(letter, batch_norm=bn, width=1 / 16, in_channels=channels, pool_size=1, fc_width=8).eval()
        view = look(model, torch.randn(1, channels, 64, 64), ["x"] * 1000, channels=2)
        assert len(view.blocks) == 5 and all(len(b.channels) == 2 for b in view.blocks)
    if letter == "A-LRN":  # the LRN switched off changes what the net computes after it
        model = vggnet.build(letter, width=1 / 8, pool_size=1, fc_width=8).eval()
        x = torch.randn(1, 3, 64, 64)
        on, off = look(model, x, ["x"] * 1000, lrn=True), look(model, x, ["x"] * 1000, lrn=False)
        assert not torch.allclose(on.blocks[1].channels[0].values, off.blocks[1].channels[0].values)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inside")
    torch.manual_seed(0)
    a = vggnet.build("A", width=1 / 8, pool_size=1, fc_width=16, num_classes=3).eval()
    b = vggnet.build("B", width=1 / 8, pool_size=1, fc_width=16, num_classes=3).eval()
    meta = {"classes": json.dumps(["cat", "dog", "owl"]), "crop": "64", "scale": "72"}
    return vggnet.save_weights(a, folder / "a.safetensors", meta), vggnet.save_weights(
        b, folder / "b.safetensors", meta
    )


def test_the_page_s_endpoints_answer_views_kernels_and_sentences(two_models):
    from fastapi.testclient import TestClient

    from vggnet.inside.app import create_inside_app, inside_models
    from vggnet.inside.settings import InsideSettings

    settings = InsideSettings(max_body=2_000_000, max_pixels=20_000_000)
    models = inside_models(vggnet.inference.loading.ModelChoice(weights=[str(p) for p in two_models]), settings)
    with TestClient(create_inside_app(models, settings)) as client:
        assert client.get("/").url.path == "/inside" and "Inside the network" in client.get("/inside").text
        listed = client.get("/inside/models").json()["models"]
        assert [m["model"] for m in listed] == ["VGG-11 (net A) at 1/8 width", "VGG-13 (net B) at 1/8 width"]
        view = client.post("/inside/look?model=1", content=png(90, 70, 1)).json()
        assert view["size"] == [72, 92] and len(view["blocks"]) == 5  # rescaled to Q = 72, the whole image
        assert all(c["png"].startswith("data:image/png;base64,") for b in view["blocks"] for c in b["channels"])
        assert len(json.dumps(view)) < 400_000  # PNGs, not tensors
        k = client.get("/inside/kernels", params={"model": 0, "layer": "relu1_1", "channel": 3}).json()
        assert k["rgb"] and k["layer"] == "conv1_1"
        smooth = np.broadcast_to(np.linspace(0, 255, 4096, dtype=np.uint8), (4096, 4096))  # small as a file
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(smooth)).save(buffer, "PNG")
        big = client.post("/inside/look", content=buffer.getvalue()).json()  # rescaled first: memory bounded
        assert big["size"] == [72, 72]
        cases = [
            (client.post("/inside/look", content=b"not an image"), 415, "not an image"),
            (client.post("/inside/look", content=png(64, 64)[:200]), 400, "not a usable image"),
            (client.post("/inside/look", content=b"x" * 3_000_000), 413, "more than the 2,000,000"),
            (client.post("/inside/look?model=5", content=png(64, 64)), 404, "there is no model 5"),
            (client.post("/inside/look?layer=fc7", content=png(64, 64)), 400, "classifier head"),
            (client.get("/inside/kernels", params={"layer": "relu1_1", "channel": 99}), 400, "channels 0 to 7"),
        ]
        for answer, status, message in cases:
            assert answer.status_code == status and message in answer.json()["error"], answer.text


def test_the_offline_folder_opens_without_a_server(two_models, tmp_path, capsys):
    image = tmp_path / "photo.png"
    image.write_bytes(png(80, 64, 3))
    out = tmp_path / "view"
    assert main(["inside", "--weights", str(two_models[0]), str(image), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    pictures = re.findall(r'<img src="([^"]+)" alt="([^"]+)"', page)
    assert {p for p, _ in pictures} == {"image.png", "cam.png", *(f"block{b}.png" for b in range(1, 6))}
    assert all((out / p).is_file() and Image.open(out / p).size[0] > 10 for p, _ in pictures)
    assert all(alt for _, alt in pictures) and "receptive field" in page
    assert main(["inside", "--weights", str(two_models[0]), str(image)]) == 2  # an image without --out: a sentence
    assert "give both an IMAGE and --out" in capsys.readouterr().err


@pytest.mark.slow
def test_the_page_in_a_real_browser_side_by_side(two_models, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "vggnet", "inside", "--weights", str(two_models[0]), "--weights", str(two_models[1])]
    log = tmp_path / "inside.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for _ in range(600):
            match = re.search(r"(http://\S+/inside)", log.read_text())
            if match:
                url = match.group(1)
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        assert url, log.read_text()
        browser = headless_chromium(tmp_path / "profile", "1280,800")
        try:
            browser.get(url)
            WebDriverWait(browser, 30).until(lambda b: "VGG-13" in b.find_element(By.ID, "models").text)
            upload = tmp_path / "upload.png"
            upload.write_bytes(png(96, 80, 5))
            browser.find_element(By.ID, "file").send_keys(str(upload))
            body = lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-state")  # noqa: E731
            WebDriverWait(browser, 60).until(lambda b: body(b) in ("shown", "error"))
            assert body(browser) == "shown", browser.find_element(By.ID, "error").text
            columns = browser.find_elements(By.CSS_SELECTOR, "#views .model")
            assert len(columns) == 2  # side by side: the same image through both
            for column in columns:
                assert len(column.find_elements(By.CSS_SELECTOR, ".block[data-block]")) == 5
                assert all(img.get_attribute("alt") for img in column.find_elements(By.TAG_NAME, "img"))
            first = columns[0].find_element(By.CSS_SELECTOR, ".map")
            first.send_keys("\n")  # a keyboard user opens a map's detail
            WebDriverWait(browser, 30).until(
                lambda b: columns[0].find_element(By.CSS_SELECTOR, ".detail").is_displayed()
            )
            detail = columns[0].find_element(By.CSS_SELECTOR, ".detail")
            assert "kernel" in detail.text and detail.find_element(By.CSS_SELECTOR, "img.kernels").get_attribute("src")
            assert len(detail.find_elements(By.CSS_SELECTOR, ".box")) == 3  # the regions behind its 3 strongest units
            shots = ROOT / "tests" / "artifacts"
            shots.mkdir(exist_ok=True)
            browser.save_screenshot(str(shots / "inside.png"))
            browser.set_window_size(390, 844)  # a phone's width
            time.sleep(0.3)
            browser.save_screenshot(str(shots / "inside_phone.png"))
            bad = tmp_path / "bad.png"
            bad.write_bytes(b"plain text, not a picture")
            browser.find_element(By.ID, "file").send_keys(str(bad))
            WebDriverWait(browser, 30).until(lambda b: body(b) == "error")
            assert "not an image" in browser.find_element(By.ID, "error").text
        finally:
            browser.quit()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
