"""Exported models through each inference engine: OpenVINO (its IR and the ONNX files) equals PyTorch in float32 and
agrees with it in int8; ``auto`` measures the installed engines once per machine and kind of model and remembers."""

import json
from pathlib import Path

import pytest
import torch
from helpers import make_folder, randomise_bn

import vggnet
from vggnet.cli import main
from vggnet.export import Int8Settings, export
from vggnet.inference.loading import Loaded, load_model

openvino = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'vggnet[openvino]')")

CLASSES = ["cat", "dog"]


def compact():
    """The same small model whatever ran before: int8's agreement with float32 is a property of the weights."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = vggnet.build("vgg11_bn", width=1 / 8, pool_size=1, fc_width=32, num_classes=2)
        return randomise_bn(model).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small model exported to ONNX and OpenVINO's IR, float32 and int8 (calibrated on a folder of images)."""
    root = tmp_path_factory.mktemp("engines")
    make_folder(root / "data" / "train", bad=False)
    make_folder(root / "data" / "val", bad=False)
    model = compact()
    loaded = Loaded(model, CLASSES, [0.5] * 3, [0.25] * 3, 32, "tiny", 36, 0)
    int8 = Int8Settings(data=str(root / "data"), calibration=8, check=8, min_agreement=0.0)
    results = export(loaded, root / "out", ("onnx", "openvino"), int8=int8)
    return root, model, results


def test_export_writes_openvinos_ir_with_what_feeds_it_and_checks_it(exported):
    root, model, results = exported
    assert {"onnx", "int8", "openvino", "openvino_int8"} <= set(results)
    assert results["openvino"]["max_rel_error"] < 1e-4
    assert (root / "out" / "model.xml").is_file() and (root / "out" / "model.bin").is_file()
    assert (root / "out" / "model.int8.bin").is_file() and 0 <= results["openvino_int8"]["agreement"] <= 1
    ir = load_model(root / "out" / "model.xml")
    assert ir.model.engine == "openvino" and ir.classes == CLASSES and (ir.crop, ir.scale) == (32, 36)
    assert ir.model.precision == "f32"


@pytest.mark.parametrize("name", ["model.onnx", "model.xml"])
def test_openvino_equals_pytorch_in_float32_at_any_size(exported, name):
    root, model, _ = exported
    runner = load_model(root / "out" / name, engine="openvino")
    for shape in ((1, 3, 32, 32), (3, 3, 48, 40)):
        x = torch.randn(*shape)
        with torch.no_grad():
            torch.testing.assert_close(runner.model(x), model.score_map(x).mean((2, 3)), rtol=1e-4, atol=1e-5)


def test_int8_through_openvino_agrees_with_float32(exported):
    root, model, _ = exported
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 32, 32, generator=g)
    with torch.no_grad():
        reference = model(x).argmax(1)
    for name in ("model.int8.onnx", "model.int8.xml"):
        runner = load_model(root / "out" / name, engine="openvino").model
        assert runner.meta["precision"].startswith("int8")
        assert (runner(x).argmax(1) == reference).float().mean() >= 0.8, name


def test_bf16_is_asked_for_and_said(exported):
    root, model, _ = exported
    runner = load_model(root / "out" / "model.onnx", engine="openvino", precision="bf16").model
    assert runner.precision in ("bf16", "f32")  # what OpenVINO runs: bf16 where the CPU has the units
    x = torch.randn(32, 3, 32, 32)
    with torch.no_grad():
        assert (runner(x).argmax(1) == model(x).argmax(1)).float().mean() >= 0.9
    with pytest.raises(ValueError, match="bf16 needs --engine openvino"):
        load_model(root / "out" / "model.onnx", engine="onnxruntime", precision="bf16")


def test_engines_refuse_what_they_cannot_run(exported, tmp_path):
    root, _, _ = exported
    with pytest.raises(ValueError, match="onnxruntime runs .onnx files"):
        load_model(root / "out" / "model.xml", engine="onnxruntime")
    with pytest.raises(ValueError, match="it runs through onnxruntime or openvino, not torch"):
        load_model(root / "out" / "model.onnx", engine="torch")
    weights = vggnet.save_weights(compact(), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="--engine openvino runs exported models; export"):
        load_model(weights, engine="openvino")


def test_auto_measures_once_per_machine_and_kind_and_remembers(exported, tmp_path, monkeypatch):
    import vggnet.engines.select as select

    root, _, _ = exported
    monkeypatch.setenv("VGGNET_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake(path, engines, precision="f32", batch=8, rounds=5):
        calls.extend(engines)
        return {e: {"onnxruntime": 10.0, "openvino": 30.0}[e] for e in engines}

    monkeypatch.setattr(select, "measure_all", fake)
    assert load_model(root / "out" / "model.onnx").model.engine == "openvino"
    assert sorted(calls) == ["onnxruntime", "openvino"]
    assert load_model(root / "out" / "model.onnx").model.engine == "openvino" and len(calls) == 2  # remembered
    cache = json.loads((tmp_path / "cache" / "engines.json").read_text())
    (entry,) = cache.values()
    assert entry["engine"] == "openvino" and entry["images_per_s"] == {"onnxruntime": 10.0, "openvino": 30.0}
    load_model(root / "out" / "model.int8.onnx")  # another kind of model: measured on its own
    assert len(calls) == 4
    assert load_model(root / "out" / "model.xml").model.engine == "openvino" and len(calls) == 4  # IR: OpenVINO only


def test_the_real_measurement_ranks_the_installed_engines(exported, tmp_path, monkeypatch):
    import vggnet.engines.select as select

    root, _, _ = exported
    rates = {e: select.measure(root / "out" / "model.onnx", e) for e in select.installed()}
    assert set(rates) == {"onnxruntime", "openvino"} and all(r > 0 for r in rates.values())


def test_eval_and_predict_run_an_exported_model_through_openvino(exported, tmp_path, capsys):
    root, _, _ = exported
    image = next((root / "data" / "val").rglob("*.png"))
    assert main(["predict", "--weights", str(root / "out" / "model.xml"), str(image), "--top", "2"]) == 0
    assert main(["eval", "--weights", str(root / "out" / "model.onnx"), "--engine", "openvino", "--data",
                 str(root / "data"), "--out", str(tmp_path / "eval"), "--protocols", "center"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "cat" in out or "dog" in out
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["rows"]


def test_a_triton_repository_for_openvinos_backend(exported, tmp_path, capsys):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    root, _, _ = exported
    weights = vggnet.save_weights(compact(), tmp_path / "m.safetensors", metadata={"classes": json.dumps(CLASSES)})
    argv = ["export", "--weights", str(weights), "--out", str(tmp_path / "out"), "--format", "onnx", "--triton",
            str(tmp_path / "repo"), "--triton-backend", "openvino", "--name", "pets"]  # fmt: skip
    assert main(argv) == 0
    folder = tmp_path / "repo" / "pets"
    assert (folder / "1" / "model.xml").is_file() and (folder / "1" / "model.bin").is_file()
    assert not (folder / "1" / "model.onnx").exists()
    parsed = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert parsed.backend == "openvino" and parsed.max_batch_size == 16  # vggnet serve's --max-batch
    assert Path(load_model(folder / "1" / "model.xml").source).name == "model.xml"


def test_fixed_batches_are_the_batchers_common_sizes():
    from vggnet.engines.fixed import batch_sizes

    assert batch_sizes(16) == [1, 2, 4, 8, 16]
    assert batch_sizes(12) == [1, 2, 4, 8, 12]
    assert batch_sizes(1) == [1] and batch_sizes(2) == [1, 2]


def test_fixed_batch_copies_answer_as_the_dynamic_model_and_only_their_own_shape(exported):
    from vggnet.engines.fixed import fix_batches

    root, model, _ = exported
    runner = load_model(root / "out" / "model.onnx", engine="openvino").model
    found = fix_batches(runner, (3, 32, 32), 4, "on")
    assert [(f.batch, f.kept, f.how) for f in found] == [(1, True, "asked"), (2, True, "asked"), (4, True, "asked")]
    assert set(runner.fixed) == {(1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32)}
    for shape in ((4, 3, 32, 32), (3, 3, 32, 32), (2, 3, 40, 36)):  # a fixed copy's, and two the dynamic model runs
        x = torch.randn(*shape)
        with torch.no_grad():
            torch.testing.assert_close(runner(x), model.score_map(x).mean((2, 3)), rtol=1e-4, atol=1e-5)
    assert fix_batches(runner, (3, 32, 32), 4, "off") == []
    with pytest.raises(ValueError, match="unknown fixed-batch mode 'fast'"):
        fix_batches(runner, (3, 32, 32), 4, "fast")


def measured_as(speedups: dict[int, float], monkeypatch, cache: Path) -> list[int]:
    """Fixed-batch measurements that give ``speedups`` by batch (a batch not there: over the budget), in a cache of
    their own; returns the batches measured, as they are."""
    import vggnet.engines.fixed as fixed

    monkeypatch.setenv("VGGNET_CACHE", str(cache))
    measured: list[int] = []

    def fake(model, shape, deadline):
        measured.append(shape[0])
        speedup = speedups.get(shape[0])
        return None if speedup is None else (speedup, None)  # no copy: the one kept is compiled afresh

    monkeypatch.setattr(fixed, "measure_copy", fake)
    return measured


def test_auto_keeps_a_copy_where_measured_faster_and_remembers(exported, tmp_path, monkeypatch):
    import vggnet.engines.fixed as fixed

    root, _, _ = exported
    measured = measured_as({1: 1.6, 2: 1.05}, monkeypatch, tmp_path / "cache")  # batch 4: over the budget
    runner = load_model(root / "out" / "model.onnx", engine="openvino").model
    found = fixed.fix_batches(runner, (3, 32, 32), 4)
    assert [(f.batch, f.speedup, f.kept, f.how) for f in found] == [
        (1, 1.6, True, "measured"),
        (2, 1.05, False, "measured"),  # under the 1.1x margin: noise, not a gain
        (4, None, False, "over budget"),
    ]
    assert set(runner.fixed) == {(1, 3, 32, 32)} and measured == [1, 2, 4]
    again = load_model(root / "out" / "model.onnx", engine="openvino").model
    found = fixed.fix_batches(again, (3, 32, 32), 4, measure=False)  # as with --no-warmup
    assert [(f.batch, f.kept, f.how) for f in found] == [
        (1, True, "remembered"),
        (2, False, "remembered"),
        (4, False, "not measured"),
    ]
    assert set(again.fixed) == {(1, 3, 32, 32)} and measured == [1, 2, 4]
    other = fixed.fix_batches(again, (3, 48, 48), 1, measure=False)  # another shape is another decision
    assert [(f.batch, f.how) for f in other] == [(1, "not measured")]


def test_the_real_fixed_batch_measurement_times_both_and_keeps_to_its_budget(exported, tmp_path, monkeypatch):
    from vggnet.engines.fixed import MARGIN, fix_batches

    root, _, _ = exported
    monkeypatch.setenv("VGGNET_CACHE", str(tmp_path / "cache"))
    runner = load_model(root / "out" / "model.onnx", engine="openvino").model
    (none,) = fix_batches(runner, (3, 32, 32), 1, budget=0.0)
    assert (none.how, none.kept, runner.fixed) == ("over budget", False, {})
    (one,) = fix_batches(runner, (3, 32, 32), 1)
    assert one.how == "measured" and 0.2 < one.speedup < 5 and one.kept == (one.speedup >= MARGIN)
    cache = json.loads((tmp_path / "cache" / "engines.json").read_text())
    assert [v["speedup"] for k, v in cache.items() if k.startswith("fixed")] == [one.speedup]


def test_past_the_budget_no_larger_batch_is_timed(exported, tmp_path, monkeypatch):
    import vggnet.engines.fixed as fixed

    root, _, _ = exported
    timed = measured_as({1: 1.0}, monkeypatch, tmp_path / "cache")  # batch 2 would not fit the budget
    runner = load_model(root / "out" / "model.onnx", engine="openvino").model
    found = fixed.fix_batches(runner, (3, 32, 32), 8)
    assert [(f.batch, f.how) for f in found] == [
        (1, "measured"),
        (2, "over budget"),
        (4, "over budget"),
        (8, "over budget"),
    ]
    assert timed == [1, 2] and runner.fixed == {}
