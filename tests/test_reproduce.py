"""vggnet reproduce: the plan of Tables 3-6, running it (skip, resume), and the verdicts on the paper's findings."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vggnet.cli import main
from vggnet.reproduce.plan import Geometry, Settings, execute, plan, state_of, train_config
from vggnet.reproduce.report import build_report, judge, write_report
from vggnet.training.loop import train

TINY = dict(dataset="synthetic", width=1 / 16, epochs=1, seeds=1, eval_limit=24, progress=False)


def by_name(runs):
    return {r.name: r for r in runs}


def test_the_plan_of_table3_is_the_papers_procedure():
    runs = plan(Settings(seeds=2))
    assert len(runs) == 24
    names = [r.name for r in runs]
    for r in runs:  # every run's initialisation is trained before it
        if r.init_from:
            assert names.index(r.init_from) < names.index(r.name)
    seed1 = by_name(runs)
    for letter in ("A", "A-LRN"):
        assert (seed1[f"{letter}_256_seed1"].init, seed1[f"{letter}_256_seed1"].init_from) == ("random", None)
    for letter in ("B", "C", "D", "E"):
        r = seed1[f"{letter}_256_seed1"]
        assert (r.init, r.init_from, r.lr, r.epochs) == ("preinit", "A_256_seed1", 0.01, 6)
    for letter in ("C", "D", "E"):
        large, jittered = seed1[f"{letter}_384_seed1"], seed1[f"{letter}_jitter_seed1"]
        assert (large.init, large.init_from, large.lr, large.epochs) == ("finetune", f"{letter}_256_seed1", 1e-3, 3)
        assert (jittered.init, jittered.init_from) == ("finetune", f"{letter}_384_seed1")
    assert {r.letter for r in runs if r.kind != "256"} == {"C", "D", "E"}
    assert {r.model for r in runs if r.multicrop} == {"D_jitter", "E_jitter"}  # the paper's Table 5


def test_scales_keep_the_papers_ratios_to_the_crop():
    runs = by_name(plan(Settings(seeds=1)))  # crop 28
    assert (runs["D_256_seed0"].scale, runs["D_256_seed0"].q_single, runs["D_256_seed0"].q_multi) == (
        [32],
        32,
        [28, 32, 36],
    )
    assert (runs["D_384_seed0"].scale, runs["D_384_seed0"].q_single, runs["D_384_seed0"].q_multi) == (
        [48],
        48,
        [44, 48, 52],
    )
    assert (runs["D_jitter_seed0"].scale, runs["D_jitter_seed0"].q_single) == ([32, 64], 48)
    assert runs["D_jitter_seed0"].q_multi == [32, 48, 64]
    paper = Geometry(224)  # at the paper's crop, the paper's numbers exactly
    assert (paper.scale("256"), paper.scale("384"), paper.scale("jitter")) == ([256], [384], [256, 512])
    assert (paper.q_multi("256"), paper.q_multi("384"), paper.q_multi("jitter")) == (
        [224, 256, 288], [352, 384, 416], [256, 384, 512])  # fmt: skip
    assert Geometry(28).paper(36) == "288" and Geometry(32).paper(37) == "259"


def test_batch_norm_plan_trains_every_net_from_scratch():
    runs = plan(Settings(seeds=1, batch_norm=True, epochs=4))
    assert len(runs) == 12 and all(r.init == "random" and r.init_from is None for r in runs)
    assert all(r.lr == 0.01 and r.epochs == 4 for r in runs)


@pytest.mark.parametrize(("bn", "length"), [(True, "4 epochs, batch"), (False, "4 epochs (fine-tuning stages 2)")])
def test_the_reports_header_says_how_long_each_stage_trained(tmp_path, bn, length):
    settings = Settings(batch_norm=bn, epochs=4, seeds=1, out=str(tmp_path))
    md, _, _ = build_report(settings, plan(settings))
    assert length in md and "0 of 12 runs evaluated" in md
    assert ("fine-tuning" in md.split("Scales in miniature")[0]) is not bn  # BN runs all start from scratch


def test_each_run_is_the_papers_recipe_in_miniature(tmp_path):
    settings = Settings(seeds=1, out=str(tmp_path))
    runs = by_name(plan(settings))
    a = train_config(runs["A_256_seed0"], settings)
    shape = (a.arch, a.batch_norm, a.init, a.ceil_mode, a.pool_size, a.fc_width)
    assert shape == ("vgg11", None, "xavier", True, 1, 512)
    assert train_config(runs["A_256_seed0"], replace(settings, init="normal")).init == "normal"  # the paper's
    assert (a.scale, a.crop, a.normalize, a.schedule, a.momentum, a.weight_decay, a.dropout, a.batch_size) == (
        [32], 28, "mean", "plateau", 0.9, 5e-4, 0.5, 64)  # fmt: skip
    d = train_config(runs["D_256_seed0"], settings)
    assert d.arch == "vgg16" and d.preinit == str(tmp_path / "A_256_seed0" / "model.safetensors") and not d.weights
    jit = train_config(runs["E_jitter_seed0"], settings)
    assert jit.weights == str(tmp_path / "E_384_seed0" / "model.safetensors") and jit.scale == [32, 64]
    assert train_config(runs["A-LRN_256_seed0"], replace(settings, batch_norm=True)).arch == "vgg11_lrn_bn"


@pytest.mark.parametrize(
    ("a", "b", "relation", "verdict"),
    [
        ([8.0, 8.2], [9.0, 9.1], "lower", "holds"),  # a lower by 0.95, spread 0.2
        ([9.0, 9.1], [8.0, 8.2], "lower", "does not hold"),
        ([8.5, 8.9], [8.7, 8.8], "lower", "within noise"),  # difference 0.05 < spread 0.4
        ([8.0, 8.6], [8.7, 8.8], "lower", "within noise"),  # difference 0.45 <= spread 0.6
        ([8.8, 8.9], [8.7, 8.8], "not_lower", "within noise"),  # no difference, as the paper found for LRN
        ([9.5, 9.6], [8.7, 8.8], "not_lower", "holds"),
        ([7.5, 7.6], [8.7, 8.8], "not_lower", "does not hold"),  # LRN would have helped
        ([8.0], [9.0], "lower", "holds"),  # one seed: the sign decides
    ],
)
def test_verdicts_on_made_up_numbers(a, b, relation, verdict):
    found = judge("finding", a, b, relation)
    assert found.verdict == verdict, found.detail
    if len(a) == 1:
        assert "no noise estimate" in found.detail
    assert judge("finding", [], b).verdict == "not measured"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A, D at the small S, D at the large S and jittered (with multi-crop): the chain every later run follows."""
    settings = Settings(**TINY, out=str(tmp_path_factory.mktemp("reproduce")))
    runs = [r for r in plan(settings) if r.name in ("A_256_seed0", "D_256_seed0", "D_384_seed0", "D_jitter_seed0")]
    logs: list[str] = []
    states = execute(settings, runs, log=logs.append)
    return settings, runs, states, logs


@pytest.mark.slow
def test_running_the_plan_trains_and_evaluates_each_run_in_its_folder(tiny_run):
    settings, runs, states, logs = tiny_run
    assert set(states.values()) == {"evaluated"}
    for r in runs:
        folder = Path(settings.out) / r.name
        assert (folder / "model.safetensors").is_file() and state_of(folder) == "evaluated"
    assert any("D_256_seed0: training D/S=256 (preinit from A_256_seed0" in line for line in logs)
    evaluated = next(line for line in logs if "D_jitter_seed0: evaluating" in line)
    assert "dense at Q = [32, 48, 64]; center at Q = [32, 48, 64]; multicrop at Q = [32, 48, 64]" in evaluated
    md, data, _ = build_report(settings, runs)
    assert "## Table 3" in md and "| D | 27.0 / 8.8 |" in md and "reproduce.png" in md
    assert "| small S | 32 | 256 |" in md
    claims = {c["claim"] for c in data["conclusions"]["center"]}
    assert claims >= {"LRN does not improve net A (A-LRN no better than A)"}
    assert [c["claim"] for c in data["conclusions"]["dense"]] == [c["claim"] for c in data["conclusions"]["center"]]
    assert set(data["cells"]["D_jitter"]) == {"dense@1", "center@1", "dense", "center", "multicrop", "dense+multicrop"}
    assert "| verdict, centre crop | verdict, dense (the paper's) |" in md
    assert data["cells"]["D_jitter"]["multicrop"]["top1"] and not data["cells"]["D_256"]["multicrop"]["top1"]
    paths = write_report(settings, runs)
    assert [p.name for p in paths] == ["reproduce.md", "reproduce.json", "reproduce.png"]
    assert json.loads(paths[1].read_text())["settings"]["width"] == 1 / 16


@pytest.mark.slow
def test_running_again_skips_finished_runs(tiny_run):
    settings, runs, _, _ = tiny_run
    stamps = {p: p.stat().st_mtime_ns for p in Path(settings.out).rglob("*.safetensors")}
    logs: list[str] = []
    execute(settings, runs, log=logs.append)
    assert all("evaluated, skipped" in line for line in logs) and len(logs) == len(runs)
    assert {p: p.stat().st_mtime_ns for p in Path(settings.out).rglob("*.safetensors")} == stamps


@pytest.mark.slow
def test_an_interrupted_run_is_resumed_and_other_settings_are_refused(tmp_path):
    settings = Settings(**{**TINY, "epochs": 2}, out=str(tmp_path))
    (first,) = [r for r in plan(settings) if r.name == "A_256_seed0"]
    stopped = train(replace(train_config(first, settings), max_steps=1))  # as if killed after one step
    assert stopped.status == "max_steps" and state_of(tmp_path / first.name) == "interrupted"
    logs: list[str] = []
    assert execute(settings, [first], log=logs.append) == {"A_256_seed0": "evaluated"}
    assert "resuming" in logs[0]
    meta = json.loads((tmp_path / "reproduce_settings.json").read_text())
    assert meta["epochs"] == 2
    with pytest.raises(ValueError, match=r"other settings: --width 0.25 \(the folder's runs have 0.0625\)"):
        execute(replace(settings, width=0.25), [first])


def test_a_failed_run_blocks_the_runs_that_start_from_it(tmp_path):
    settings = Settings(**TINY, out=str(tmp_path))
    runs = [r for r in plan(settings) if r.name in ("A_256_seed0", "B_256_seed0")]
    (tmp_path / "A_256_seed0").mkdir()
    (tmp_path / "A_256_seed0" / "failed.json").write_text('{"status": "diverged"}')
    logs: list[str] = []
    assert execute(settings, runs, log=logs.append) == {"A_256_seed0": "failed", "B_256_seed0": "blocked"}
    assert "did not train" in logs[1]


@pytest.mark.slow
def test_plan_prints_the_runs_and_their_cost_without_running(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", "--dataset", "synthetic", "--width", "0.0625", "--seeds", "1", "--plan",
                 "--out", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "| E_jitter_seed0 | E | 32-64 ([256,512]) | all of E_384_seed0 | 0.001 |" in text
    assert "estimated total:" in text and "measured training images/s" in text
    assert not out.exists()


@pytest.mark.slow
def test_an_evaluation_that_lacks_a_protocol_is_completed_without_redoing_the_rest(tiny_run):
    from safetensors.torch import load_file, save_file

    settings, runs, _, _ = tiny_run
    path = Path(settings.out) / "D_384_seed0" / "posteriors.safetensors"
    full = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file({k: v for k, v in full.items() if not k.startswith("center@")}, str(path), metadata=meta)
    logs: list[str] = []
    execute(settings, runs, log=logs.append)
    (line,) = [x for x in logs if "D_384_seed0" in x]
    assert line.endswith("evaluating center at Q = [44, 48, 52]")
    again = load_file(str(path))
    assert set(again) == set(full) and all(torch.equal(again[k], full[k]) for k in full)
