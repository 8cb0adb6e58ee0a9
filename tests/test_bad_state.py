"""Bad state on the newer surfaces, met as a careless or unlucky user meets it: an optional package not installed,
OpenVINO IR files that are damaged, the engines' cache edited by hand, a flag that cannot be honoured, vggnet bench's
arguments, a reproduction's folder with damaged files or a refused first attempt, Ctrl-C as a run ends, NaN in the
service's JSON. Each: exit status not 0 for what cannot be done, one sentence on stderr naming the file or flag (no
traceback, no "unexpected error", no library log), and nothing already saved lost or changed."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import png, small_weights
from safetensors.torch import load_file

from vggnet.cli import main

ROOT = Path(__file__).resolve().parents[1]


def vggnet_command(args: list[str], cwd: Path, block: str | None = None, env: dict | None = None):
    """``vggnet ARGS`` in a subprocess as a user runs it; ``block``: an optional package made not installed."""
    prelude = f"import sys; sys.modules[{block!r}] = None; " if block else "import sys; "
    code = prelude + "from vggnet.cli import main; sys.exit(main(sys.argv[1:]))"
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


def one_sentence(proc, *words: str) -> str:
    """The stderr of a refused command: exit 2, one line naming ``words``, no traceback or plea to report."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err)
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and "unexpected error" not in err and "please report" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small model, its weights, and its export as ONNX and as OpenVINO IR."""
    root = tmp_path_factory.mktemp("bad_state")
    small_weights(root / "w.safetensors")
    (root / "cat.png").write_bytes(png(40, 40, 1))
    proc = vggnet_command(["export", "--weights", "w.safetensors", "--out", "exp", "--openvino"], root)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    ("block", "args", "extra"),
    [
        ("onnxruntime", ["predict", "--weights", "exp/model.onnx", "--engine", "onnxruntime", "cat.png"], "export"),
        ("onnxruntime", ["export", "--weights", "w.safetensors", "--out", "exp"], "export"),
        ("onnx", ["export", "--weights", "w.safetensors", "--out", "exp"], "export"),
        ("openvino", ["export", "--weights", "w.safetensors", "--out", "exp", "--openvino"], "openvino"),
        ("openvino", ["predict", "--weights", "exp/model.xml", "--engine", "openvino", "cat.png"], "openvino"),
    ],
)
def test_an_optional_package_not_installed_is_named_with_its_extra(exported, block, args, extra):
    before = digests(exported / "exp")
    proc = vggnet_command(args, exported, block=block)
    one_sentence(proc, block, f"pip install 'vggnet[{extra}]'")
    assert digests(exported / "exp") == before  # earlier outputs kept


@pytest.mark.slow
def test_damaged_openvino_files_are_one_sentence_naming_the_file(exported):
    ir, bad = exported / "exp", exported / "bad"
    bad.mkdir(exist_ok=True)
    xml, weights = (ir / "model.xml").read_text(), (ir / "model.bin").read_bytes()
    cases = {
        "nobin": (xml, None, "are missing"),
        "short": (xml, weights[:1000], "truncated"),
        "notxml": ("this is not XML <", weights, "not XML"),
        "other": ("<html><body/></html>", weights, "not a <net>"),
        "crop": (xml.replace('<crop value="32"', '<crop value="thirty-two"'), weights, "'crop' does not read"),
        "classes": (xml.replace('<classes value="[&quot;a', '<classes value="7" was="[&quot;a'), weights, "'classes'"),
    }
    for name, (text, data, says) in cases.items():
        (bad / f"{name}.xml").write_text(text)
        if data is not None:
            (bad / f"{name}.bin").write_bytes(data)
        for engine in ("openvino", "auto"):
            proc = vggnet_command(["predict", "--weights", f"bad/{name}.xml", "--engine", engine, "cat.png"], exported)
            one_sentence(proc, f"{name}.", says)
    assert "thirty-two" in (bad / "crop.xml").read_text() and "7" in (bad / "classes.xml").read_text()


@pytest.mark.slow
def test_the_engines_cache_is_never_a_reason_to_fail(exported, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    args = ["predict", "--weights", "exp/model.onnx", "cat.png"]
    first = vggnet_command(args, exported, env={"VGGNET_CACHE": str(cache)})
    assert first.returncode == 0, first.stderr
    good = json.loads((cache / "engines.json").read_text())
    (key,) = good
    for damaged, says in (
        ("[1, 2, 3]", "set aside"),  # a list instead of an object
        ("{not json", "set aside"),
        (json.dumps({key: "onnxruntime"}), "measuring again"),  # an entry that is a string
        (json.dumps({key: {"engine": "openvino"}}), "measuring again"),  # an entry without candidates
        (json.dumps({key: {"engine": 3, "candidates": "all"}}), "measuring again"),
    ):
        (cache / "engines.json").write_text(damaged)
        proc = vggnet_command(args, exported, env={"VGGNET_CACHE": str(cache)})
        assert proc.returncode == 0, proc.stderr
        said = [line for line in proc.stderr.splitlines() if "engines' cache" in line]
        assert len(said) == 1 and says in said[0] and "engines.json" in said[0], proc.stderr
        rewritten = json.loads((cache / "engines.json").read_text())
        assert isinstance(rewritten, dict) and set(rewritten[key]) >= {"engine", "candidates"}
    assert (cache / "engines.json.unreadable").is_file()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("exp/model.torchscript.pt", "TorchScript program"),
        ("exp/model.xml", "OpenVINO model"),
        ("exp/model.bin", "not a PyTorch weights file or truncated"),
        ("exp/model.onnx", "exported ONNX model"),
    ],
)
def test_an_exported_file_given_as_weights_says_what_it_is(exported, name, says, capsys):
    for args in (["info", name], ["convert", name, "--out", "c.safetensors"], ["predict", "--weights", name]):
        cwd = Path.cwd()
        os.chdir(exported)
        try:
            code = main([*args, "cat.png"] if args[0] == "predict" else args)
        finally:
            os.chdir(cwd)
        out, err = capsys.readouterr()
        err = err.strip()
        if args[0] in ("predict", "info") and name.endswith((".xml", ".onnx")):
            assert code == 0  # an exported model is what predict runs, and info describes it from its metadata
            assert args[0] == "predict" or ("a model vggnet exported" in out and "3 classes" in out), out
            continue
        assert code == 2 and says in err and len(err.splitlines()) == 1, (args, err)
        assert "Weights only load failed" not in err and "warn" not in err.lower()
    assert not (exported / "c.safetensors").exists()


def test_a_flag_that_cannot_be_honoured_is_refused_not_dropped(exported, capsys):
    code = main(["predict", "--weights", str(exported / "w.safetensors"), "--precision", "bf16", "x.png"])
    assert code == 2 and "--precision bf16" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--arch", "vgg99"], "vgg11, vgg11_bn"),
        (["--arch", "C"], "torchvision has no such VGG"),
        (["--arch", "vgg11_lrn"], "torchvision has no such VGG"),
        (["--images", "README.md"], "is a file; give a folder"),
        (["--out", "docs"], "is a folder; give the Markdown file"),
    ],
)
def test_bench_names_what_it_needs(flags, says, capsys):
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        assert main(["bench", *flags]) == 2
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "unexpected" not in err


# -- the reproduction's folder ----------------------------------------------------------------------------------------
COMMON = ["--dataset", "synthetic", "--width", "0.0625", "--epochs", "1", "--seeds", "1", "--scale-seeds", "0"]
COMMON += ["--eval-limit", "24", "--no-progress"]
TINY = [*COMMON, "--nets", "A"]


def test_a_refused_first_attempt_records_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", *TINY, "--val-split", "100000", "--out", str(out)]) == 2
    assert "validation split" in capsys.readouterr().err
    assert not (out / "reproduce_settings.json").exists()
    assert main(["reproduce", *TINY, "--val-split", "48", "--out", str(out)]) == 0  # the corrected command runs
    assert json.loads((out / "reproduce_settings.json").read_text())["val_split"] == 48


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduced") / "r"
    assert main(["reproduce", *TINY, "--val-split", "48", "--out", str(out)]) == 0
    return out


def test_a_damaged_result_file_is_evaluated_again_or_named(reproduced, capsys):
    run = reproduced / "A_256_seed0"
    intact = {k: v.clone() for k, v in load_file(run / "val.safetensors").items()}  # not a view of the file's bytes
    for split in ("val", "test"):
        report = (reproduced / "reproduce.json").read_text()
        good = (run / f"{split}.safetensors").read_bytes()
        (run / f"{split}.safetensors").write_bytes(good[: len(good) // 2])  # a full disk, a copy cut short
        assert main(["reproduce", *TINY, "--val-split", "48", "--out", str(reproduced), "--report-only"]) == 2
        err = capsys.readouterr().err
        assert f"{split}.safetensors does not read" in err and "Traceback" not in err
        assert (reproduced / "reproduce.json").read_text() == report  # never a report from a damaged file
        assert main(["reproduce", *TINY, "--val-split", "48", "--out", str(reproduced)]) == 0
        assert "evaluating it again" in capsys.readouterr().err
        assert len((run / f"{split}.safetensors").read_bytes()) >= len(good) // 2 + 1
    again = load_file(run / "val.safetensors")  # whole again, with the same posteriors (its timings are new)
    assert again.keys() == intact.keys()
    for key, value in intact.items():
        torch.testing.assert_close(again[key], value)


def test_a_report_of_an_unfinished_plan_says_what_is_missing(reproduced, tmp_path, capsys):
    out = tmp_path / "r"
    shutil.copytree(reproduced, out)
    args = ["reproduce", *COMMON, "--nets", "A", "--val-split", "48", "--out", str(out), "--report-only"]
    assert main(args) == 0 and capsys.readouterr().err == ""  # the plan is done
    assert main([*args, "--seeds", "2"]) == 0  # a second seed asked for, not run yet
    err = capsys.readouterr().err.strip()
    assert "1 of the plan's 2 runs are not done (A_256_seed1)" in err and "without --report-only" in err
    assert not (out / "A_256_seed1").exists()


def test_damaged_settings_of_the_folder_are_named(reproduced, capsys):
    path = reproduced / "reproduce_settings.json"
    good = path.read_text()
    try:
        for damaged in (good[: len(good) // 2], "[1, 2]"):
            path.write_text(damaged)
            for extra in ([], ["--report-only"]):
                assert main(["reproduce", *TINY, "--val-split", "48", "--out", str(reproduced), *extra]) == 2
                err = capsys.readouterr().err.strip()
                assert "reproduce_settings.json" in err and len(err.splitlines()) == 1 and "Expecting" not in err[:40]
            assert path.read_text() == damaged  # nothing overwritten
    finally:
        path.write_text(good)


def test_an_interrupted_runs_checkpoint_that_does_not_read_is_named_with_what_to_do(tmp_path, capsys):
    out, args = tmp_path / "r", ["reproduce", *TINY, "--val-split", "48"]
    (out / "A_256_seed0").mkdir(parents=True)
    (out / "A_256_seed0" / "last.pt").write_bytes(b"PK\x03\x04 cut short")  # a zip's first bytes, then nothing
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "A_256_seed0/last.pt" in err and "delete it" in err, err
    (out / "A_256_seed0" / "last.pt").unlink()
    assert main([*args, "--out", str(out)]) == 0 and (out / "A_256_seed0" / "test.safetensors").is_file()


@pytest.mark.slow
def test_ctrl_c_as_a_run_ends_stops_the_reproduction_and_says_how_to_continue(tmp_path, monkeypatch, capsys):
    import vggnet.training.loop as loop

    real = loop.finish

    def interrupted_while_finishing(run):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the last epoch ends
        return real(run)

    monkeypatch.setattr(loop, "finish", interrupted_while_finishing)
    out = tmp_path / "r"
    args = ["reproduce", *COMMON, "--nets", "A", "B", "--val-split", "48"]
    assert main([*args, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "run the same command again to continue" in err and "A_256_seed0" in err
    assert (out / "A_256_seed0" / "model.safetensors").is_file() and not (out / "B_256_seed0").exists()
    monkeypatch.setattr(loop, "finish", real)

    def interrupted_while_testing(*args, **kwargs):
        raise KeyboardInterrupt

    import vggnet.reproduce.runs as runs

    monkeypatch.setattr(runs, "evaluate_run", interrupted_while_testing)
    assert main([*args, "--out", str(out)]) == 130
    assert "run the same command again to continue" in capsys.readouterr().err
    monkeypatch.undo()
    assert main([*args, "--out", str(out)]) == 0 and (out / "B_256_seed0" / "test.safetensors").is_file()


# -- the service's JSON ---------------------------------------------------------------------------------------------
def test_a_non_finite_score_is_null_in_the_services_json(weights):
    from fastapi.testclient import TestClient

    from vggnet.serving.app import create_app
    from vggnet.serving.settings import ServeSettings
    from vggnet.web.engine import Engine

    x = torch.rand(2, 3, 32, 32)
    x[1, 0, 5, 5] = float("nan")
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [2, 3, 32, 32], "data": x.flatten().tolist()}]}

    def strict(token):
        raise AssertionError(f"{token} is not JSON")

    with TestClient(create_app(Engine.load(str(weights)), ServeSettings(max_batch=2))) as client:
        answer = client.post("/v2/models/vggnet/infer", content=json.dumps(body))
        assert answer.status_code == 200, answer.text
        data = json.loads(answer.text, parse_constant=strict)["outputs"][0]["data"]
        assert all(v is not None for v in data[:3]) and data[3:] == [None, None, None]
