"""vggnet reproduce: the plan of Tables 3-6, running it (skip, resume), decisions on held-out data only, the test set
read once at the end, and a report whose every verdict comes from the rule in vggnet.reproduce.stats."""

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vggnet.cli import main
from vggnet.reproduce.cost import plan_table
from vggnet.reproduce.findings import NOT_MEASURED
from vggnet.reproduce.geometry import Geometry
from vggnet.reproduce.plan import LETTERS, PAPER, Settings, plan, train_config, with_paper_defaults
from vggnet.reproduce.report import build_report, write_report
from vggnet.reproduce.runs import execute, state_of
from vggnet.reproduce.stats import NOT_TESTABLE, TOO_FEW
from vggnet.training.loop import train

TINY = dict(dataset="synthetic", width=1 / 16, epochs=1, seeds=2, eval_limit=24, val_split=48, progress=False)
TINY.update(scratch_nets=["D"], stall_epochs=1)


def by_name(runs):
    return {r.name: r for r in runs}


def test_the_plan_is_the_papers_procedure_with_the_scale_nets_on_data_with_scale():
    runs = plan(Settings(seeds=2))
    # per seed: A, A-LRN, B-E, the stall test (A, D, E from N(0, 0.01), D, E from A's layers with the rest at
    # N(0, 0.01), D, E from Glorot's); A, D, E at 32, D and E at 48 and jittered, scaled
    assert len(runs) == 40
    assert [r.group for r in runs] == ["nets"] * 26 + ["scales"] * 14  # whole seeds of the nets first
    names = [r.name for r in runs]
    for r in runs:  # every run's initialisation is trained before it, within its seed
        if r.init_from:
            assert names.index(r.init_from) < names.index(r.name) and r.init_from.endswith(f"seed{r.seed}")
    seed1 = by_name(runs)
    for letter in ("A", "A-LRN"):
        assert (seed1[f"{letter}_256_seed1"].init, seed1[f"{letter}_256_seed1"].dataset) == ("random", "fashion-mnist")
    for letter in ("B", "C", "D", "E"):
        r = seed1[f"{letter}_256_seed1"]
        assert (r.init, r.init_from, r.lr, r.epochs) == ("preinit", "A_256_seed1", 0.01, 50)
    for letter in ("D", "E"):  # the paper's reason to pre-initialise, measured: the same nets from random weights
        r = seed1[f"{letter}_256_scratch_seed1"]
        assert (r.init, r.init_from, r.model, r.dataset) == ("random", None, f"{letter}_256_scratch", "fashion-mnist")
    for letter in ("D", "E"):
        small, large, jittered = (seed1[f"{letter}_{k}_scaled_seed1"] for k in ("256", "384", "jitter"))
        assert (small.init, small.init_from, small.dataset) == ("preinit", "A_256_scaled_seed1", "fashion-mnist-scaled")
        assert (large.init, large.init_from, large.lr, large.epochs) == ("finetune", small.name, 1e-3, 25)
        assert (jittered.init, jittered.init_from) == ("finetune", large.name)
    assert {r.model for r in runs if r.multicrop} == {"D_jitter_scaled", "E_jitter_scaled"}  # the paper's Table 5
    bn = plan(Settings(seeds=1, batch_norm=True, epochs=4))
    assert len(bn) == 12 and all(r.init == "random" and r.epochs == 4 and r.lr == 0.01 for r in bn)
    fewer = plan(Settings(seeds=10, scale_seeds=2, batch_norm=True, nets=["A", "D"]))  # the groups' own seeds
    assert len(fewer) == 10 * 2 + 2 * 6 and {r.seed for r in fewer if r.group == "scales"} == {0, 1}
    assert not [r for r in plan(Settings(seeds=2, scale_seeds=0)) if r.group == "scales"]


def test_every_run_ends_after_at_least_one_division_of_its_rate(tmp_path):
    settings = Settings(seeds=1, out=str(tmp_path))
    cfg = train_config(by_name(plan(settings))["D_256_seed0"], settings)
    # the first rate may use 40 of the 50 epochs: only where the rule has not divided it by then is it divided
    assert (cfg.schedule, cfg.max_decays, cfg.final_decay, cfg.patience, cfg.epochs) == ("plateau", 2, 10, 1, 50)
    short = replace(settings, epochs=1)  # a one-epoch run has no final stage to end with
    assert train_config(by_name(plan(short))["A_256_seed0"], short).final_decay == 0


def test_paper_plans_exactly_the_papers_runs():
    settings = Settings(**with_paper_defaults({"data": "/data/imagenet", "dataset": "folder", "seeds": 1}))
    assert (settings.epochs, settings.init_scheme, settings.batch_size, settings.crop, settings.width) == (
        74, "normal", 256, 224, 1.0)  # fmt: skip
    runs = by_name(plan(settings))
    assert len(runs) == 12 and {r.dataset for r in runs.values()} == {"folder"}  # Table 3's twelve nets, one data
    assert settings.decays == 3  # the paper's three decreases of the rate
    assert (runs["C_384_seed0"].init_from, runs["C_jitter_seed0"].init_from) == ("C_256_seed0", "C_384_seed0")
    assert runs["D_384_seed0"].scale == [384] and runs["E_jitter_seed0"].scale == [256, 512]
    assert runs["E_jitter_seed0"].q_multi == [256, 384, 512] and runs["D_256_seed0"].q_multi == [224, 256, 288]
    cfg = train_config(runs["A_256_seed0"], settings)
    assert (cfg.init, cfg.epochs, cfg.batch_size, cfg.pool_size, cfg.fc_width) == ("normal", 74, 256, 7, 4096)
    assert set(PAPER) <= set(Settings.__dataclass_fields__)
    table = plan_table(settings, list(runs.values()))
    assert "dense and multi-crop" in table and "never the test set" in table


def test_scales_keep_the_papers_ratios_and_say_both_units():
    runs = by_name(plan(Settings(seeds=1)))  # crop 28
    d = runs["D_256_seed0"]
    assert (d.scale, d.q_single, d.q_multi) == ([32], 32, [28, 32, 36])
    large, jit = runs["D_384_scaled_seed0"], runs["D_jitter_scaled_seed0"]
    assert (large.scale, large.q_multi, jit.scale, jit.q_single, jit.q_multi) == ([48], [44, 48, 52], [32, 64], 48,
                                                                                  [32, 48, 64])  # fmt: skip
    geo = Geometry(28)
    assert geo.label("256") == "S=32 (256)" and geo.label("jitter") == "S∈[32,64] ([256,512])"


def test_dense_evaluation_is_testable_only_where_the_crop_spans_the_papers_strides():
    assert "stride (32 pixels) is at least the crop (28)" in Geometry(28).dense_breaks([32, 48, 64])
    assert Geometry(224).dense_breaks([256, 384, 512]) is None and Geometry(224).dense_breaks([224, 256, 288]) is None
    assert "reach past the image" in Geometry(96).dense_breaks([170])


def test_each_run_is_the_papers_recipe_in_miniature_with_its_true_initialisation(tmp_path):
    settings = Settings(seeds=1, out=str(tmp_path))
    runs = by_name(plan(settings))
    a = train_config(runs["A_256_seed0"], settings)
    assert (a.arch, a.init, a.ceil_mode, a.pool_size, a.fc_width, a.val_split) == (
        "vgg11",
        "xavier",
        True,
        1,
        512,
        5000,
    )
    assert (a.scale, a.crop, a.normalize, a.schedule, a.momentum, a.weight_decay, a.dropout, a.batch_size) == (
        [32], 28, "mean", "plateau", 0.9, 5e-4, 0.5, 64)  # fmt: skip
    d = train_config(runs["D_256_scaled_seed0"], settings)
    assert (
        d.preinit == str(tmp_path / "A_256_scaled_seed0" / "model.safetensors") and d.dataset == "fashion-mnist-scaled"
    )
    jit = train_config(runs["E_jitter_scaled_seed0"], settings)
    assert jit.weights == str(tmp_path / "E_384_scaled_seed0" / "model.safetensors") and jit.scale == [32, 64]
    bn = replace(settings, batch_norm=True)
    assert train_config(runs["A-LRN_256_seed0"], bn).arch == "vgg11_lrn_bn"
    assert train_config(runs["A_256_seed0"], bn).init == "kaiming" == bn.init_scheme  # what the BN runs really use


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole plan on synthetic data, two seeds, recording when the test split is opened."""
    import vggnet.data.opening as datasets
    import vggnet.training.loop as loop

    settings = Settings(**TINY, scale_nets=["D", "E"], out=str(tmp_path_factory.mktemp("reproduce")))
    runs = plan(settings)
    events: list[str] = []
    real_open, real_train = datasets.open_test_set, loop.train

    def opening_test(*args, **kwargs):
        events.append("test opened")
        return real_open(*args, **kwargs)

    def training(cfg, *args, **kwargs):
        events.append(f"train {Path(cfg.out).name}")
        return real_train(cfg, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets, "open_test_set", opening_test)
        patch.setattr(loop, "train", training)
        logs: list[str] = []
        states = execute(settings, runs, log=logs.append)
    return settings, runs, states, logs, events


@pytest.mark.slow
def test_the_test_split_is_opened_only_by_the_final_evaluation(tiny_run):
    settings, runs, states, logs, events = tiny_run
    assert set(states.values()) == {"tested"} and len(runs) == 28  # synthetic data: the scale nets on the same data
    last_training = max(i for i, e in enumerate(events) if e.startswith("train"))
    first_test = events.index("test opened")
    assert first_test > last_training and events.count("test opened") == len(runs)  # once per run, at the end
    assert [line for line in logs if "testing" in line] == logs[-len(runs) :]
    for r in runs:
        assert state_of(r, settings) == "validated" and (Path(settings.out) / r.name / "test.safetensors").is_file()


@pytest.fixture
def all_trained(monkeypatch):
    """The tiny runs barely leave chance in one epoch: count every one as trained, for the tests of what the report
    does with trained runs (test_a_run_that_never_left_chance_is_left_out checks the rule itself)."""
    from vggnet.reproduce.results import Results

    monkeypatch.setattr(Results, "trained", lambda self, run: run in self.saved["val"])


@pytest.mark.slow
def test_no_decision_reads_the_test_set(tiny_run, all_trained):
    """The better fixed S and the ensemble's pair come from the validation split: scrambling every test posterior
    changes the reported errors, never a decision."""
    from safetensors.torch import load_file, save_file

    settings, runs, _, _, _ = tiny_run
    _, before, _ = build_report(settings, runs)
    saved = {}
    for r in runs:
        path = Path(settings.out) / r.name / "test.safetensors"
        saved[path] = path.read_bytes()
        tensors = load_file(str(path))
        g = torch.Generator().manual_seed(0)
        scrambled = {k: (v if k == "labels" else v[torch.randperm(len(v), generator=g)]) for k, v in tensors.items()}
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        save_file(scrambled, str(path), metadata=meta)
    try:
        _, after, _ = build_report(settings, runs)
    finally:
        for path, data in saved.items():
            path.write_bytes(data)
    assert after["decisions"] == before["decisions"]
    assert after["cells"]["test"] != before["cells"]["test"] and after["cells"]["val"] == before["cells"]["val"]


@pytest.mark.slow
def test_the_report_judges_every_finding_and_says_what_it_cannot_test(tiny_run, all_trained):
    settings, runs, _, _, _ = tiny_run
    md, data, _ = build_report(settings, runs)
    verdicts = {f["claim"]: f for f in data["findings"]}
    assert len(verdicts) == 20 and {"D-B", "E-B", "stall-normal", "stall-preinit-normal", "stall"} <= {
        f["id"] for f in data["findings"]
    }
    for f in data["findings"]:  # two seeds: an effect for the record, never a verdict
        assert f["verdict"] in (TOO_FEW, NOT_TESTABLE, NOT_MEASURED) and f["p"] is None and f["id"]
        assert f["unit"] == "seed" and f["seeds"] in (0, 2) and {"adjusted_verdict", "power_at_paper", "p"} <= set(f)
        assert f["adjusted_verdict"] == f["verdict"] and f["power_at_paper"] is None
        if "dense" in f["protocol"]:
            assert f["verdict"] == NOT_TESTABLE and "stride" in f["reason"]  # 28-pixel crops, stride 32
        elif f["effect"] and f["verdict"] == TOO_FEW:
            e = f["effect"]
            assert (e["low"] is None or e["low"] <= e["effect"] <= e["high"]) and len(e["per_seed"]) == 2
            assert f["calibration"]["seeds"] == 2 and f["calibration"]["images"] == e["images"]
            assert f["scaled"] == pytest.approx(f["paper"] * f["error_here"] / f["paper_error"])
    lrn = verdicts["LRN does not improve net A: A-LRN no better than A"]
    assert lrn["no_better"] and lrn["kind"] == "nets"
    ensemble = next(f for f in data["findings"] if f["claim"].startswith("an ensemble"))
    assert ensemble["kind"] == "protocols" and ensemble["effect"]["method"].startswith("seeds")
    assert "each from another seed" in ensemble["claim"]
    assert verdicts["3x3 beats 1x1 at equal depth: D beats C"]["verdict"] == NOT_TESTABLE  # 2-pixel maps at crop 28
    assert "2 x 2 map" in verdicts["3x3 beats 1x1 at equal depth: D beats C"]["reason"]
    stall = next(f for f in data["findings"] if f["id"] == "stall")  # N(0, 0.01) against net A's layers
    assert stall["kind"] == "failures" and stall["seeds"] == 2
    if stall["effect"]:  # a seed's share difference is a share: within +-100 points however many nets it pools
        assert all(-100 <= d <= 100 for d in stall["effect"]["per_seed"])
    assert data["failures"]["D_256_scratch"]["runs"] == 2 and data["failures"]["D_256"]["procedure"].startswith("from")
    assert data["timing"]["eval_minutes"] > 0 and "eval_share" in data["timing"]
    assert "last_epoch_gain" in data["runs"]["A_256_seed0"] and data["power"][0]["claim"] == lrn["claim"]
    assert {"maps of blocks 3-5", "colour shift", "schedule"} <= {r["what"] for r in data["deviations"]}
    assert data["rule"]["margin"] == 0.2 and {(c["kind"], c["seeds"]) for c in data["rule"]["calibration"]} == {
        (k, n) for k in ("nets", "protocols") for n in (2, 3, 5, 10)
    }
    history = data["runs"]["A_256_seed0"]["history"]
    assert history and {"epoch", "lr", "val_top1_err"} <= set(history[0])
    rows = {"initialisation", "batch", "epochs", "epochs B-E inherit", "dense evaluation", "decisions (plateau, S, "
            "ensemble)"}  # fmt: skip
    assert {r["what"] for r in data["deviations"]} >= rows
    assert "LRN normalises" in md and data["lrn"]["runs"]["A-LRN_256_seed0"]["p99"] > 0
    for heading in ("Table 3: the nets", "Table 3: training scales", "Table 4", "Table 5", "Table 6"):
        assert heading in md
    paths = write_report(settings, runs)
    assert [p.name for p in paths] == ["reproduce.md", "reproduce.json", "reproduce.png"]
    assert json.loads(paths[1].read_text())["settings"]["width"] == 1 / 16


@pytest.mark.slow
def test_one_seed_decides_no_finding_of_any_kind(tiny_run, all_trained):
    settings, _, _, _, _ = tiny_run
    one = replace(settings, seeds=1)
    _, data, _ = build_report(one, plan(one))
    assert {f["verdict"] for f in data["findings"]} <= {NOT_TESTABLE, TOO_FEW}
    assert all(f["adjusted_verdict"] == f["verdict"] and f["p"] is None for f in data["findings"])


@pytest.mark.slow
def test_running_again_skips_finished_runs_and_other_settings_are_refused(tiny_run):
    settings, runs, _, _, _ = tiny_run
    stamps = {p: p.stat().st_mtime_ns for p in Path(settings.out).rglob("*.safetensors")}
    logs: list[str] = []
    execute(settings, runs, log=logs.append)
    assert all("validated, skipped" in line for line in logs) and len(logs) == len(runs)
    assert {p: p.stat().st_mtime_ns for p in Path(settings.out).rglob("*.safetensors")} == stamps
    with pytest.raises(ValueError, match=r"other settings: --width 0.25 \(the folder's runs have 0.0625\)"):
        execute(replace(settings, width=0.25), runs)


@pytest.mark.slow
def test_an_interrupted_run_is_resumed(tmp_path):
    settings = Settings(**{**TINY, "epochs": 2, "seeds": 1}, out=str(tmp_path))
    first = by_name(plan(settings))["A_256_seed0"]
    stopped = train(replace(train_config(first, settings), max_steps=1))  # as if killed after one step
    assert stopped.status == "max_steps" and state_of(first, settings) == "interrupted"
    logs: list[str] = []
    assert execute(settings, [first], log=logs.append) == {"A_256_seed0": "tested"}
    assert "resuming" in logs[0]


def test_a_failed_run_blocks_the_runs_that_start_from_it(tmp_path):
    settings = Settings(**TINY, out=str(tmp_path))
    runs = [r for r in plan(settings) if r.name in ("A_256_seed0", "B_256_seed0")]
    (tmp_path / "A_256_seed0").mkdir()
    (tmp_path / "A_256_seed0" / "failed.json").write_text('{"status": "diverged"}')
    logs: list[str] = []
    assert execute(settings, runs, log=logs.append) == {"A_256_seed0": "failed", "B_256_seed0": "blocked"}
    assert "did not train" in logs[1]


@pytest.mark.slow
def test_plan_prints_the_runs_tables_and_decisions_without_running(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["reproduce", "--dataset", "synthetic", "--width", "0.0625", "--seeds", "2", "--val-split", "48", "--plan"]
    assert main([*argv, "--out", str(out)]) == 0
    text, err = capsys.readouterr()
    assert "| E_jitter_seed0 | synthetic | S∈[32,64] ([256,512]) | all of E_384_seed0 | 0.001 |" in text
    assert "estimated total:" in text and "Table 6, the ensemble" in text and "dense: not testable here" in text
    assert "the ensemble's pair and its better member: validation error, centre crop" in text
    assert "0.0 h" not in text and "not in this plan" not in text
    assert "timing a few training steps of each net here" in err  # the seconds it measures are said first
    assert not out.exists()


def test_a_small_plan_lists_only_the_tables_it_fills_and_its_times_in_minutes_and_seconds():
    from vggnet.reproduce.cost import Cost

    settings = Settings(dataset="synthetic", seeds=1, scale_seeds=0, nets=["A", "B"], scratch_nets=[], epochs=2)
    runs = plan(settings)
    cost = Cost({x: 5000.0 for x in LETTERS}, {"synthetic": 512}, 48, {"synthetic": 128})
    table = plan_table(settings, runs, cost)
    assert "Table 3, the nets A, B at the small S" in table
    assert not [t for t in ("- Table 3, the training", "- Table 4", "- Table 5", "- Table 6") if t in table]
    left = "not in this plan: Table 3's training scales, Tables 4 and 5 (no training-scale runs: --scale-seeds 0)"
    assert left in table
    assert "the better fixed S" not in table and "ensemble's pair" not in table
    assert " h" not in table.split("estimated total:", 1)[1].split("\n\n", 1)[0]  # never "0.0 h"
    assert re.search(r"1 node \d+(\.\d)? s, 2 nodes", table), table
    assert re.search(r"\| A_256_seed0 \| synthetic \| .* \| \d+(\.\d)? s \|", table), table


@pytest.mark.slow
def test_a_run_that_never_left_chance_is_left_out_with_the_runs_that_start_from_it(tiny_run):
    from vggnet.reproduce.results import Results

    settings, runs, _, _, _ = tiny_run
    results = Results(settings, runs)
    histories = {n: f["meta"]["history"] for n, f in results.saved["val"].items()}
    histories["A_256_seed0"][-1]["val_top1_err"] = 0.30  # 4 classes: chance is 75 %
    histories["B_256_seed0"][-1]["val_top1_err"] = 0.74
    histories["D_256_seed0"][-1]["val_top1_err"] = 0.20
    histories["D_384_seed0"][-1]["val_top1_err"] = 0.20
    assert results.trained("A_256_seed0") and not results.trained("B_256_seed0")
    assert results.trained("D_384_seed0")
    histories["D_256_seed0"][-1]["val_top1_err"] = 0.75
    assert not results.trained("D_384_seed0")  # fine-tuned from a net that never trained
    assert "B_256_seed0" in results.stuck() and not results.posteriors("B_256", "center@1", "test").get(0)


def test_a_plan_on_n_nodes_is_bounded_by_its_longest_chain():
    from vggnet.reproduce.schedule import longest_chain, makespan

    settings = Settings(seeds=3, scale_seeds=0, nets=["A", "A-LRN", "B"], scratch_nets=[])
    runs = plan(settings)  # per seed A, A-LRN, B (from A)
    minutes = {r.name: {"A": 10.0, "A-LRN": 5.0, "B": 20.0}[r.letter] for r in runs}
    assert makespan(runs, minutes, 1) == sum(minutes.values()) == 105
    assert longest_chain(runs, minutes) == 30  # A then B
    assert makespan(runs, minutes, 3) == 35  # the three chains at once, the A-LRN runs fitted in after
    assert makespan(runs, minutes, 100) == 30 and makespan(runs, minutes, 2) >= 105 / 2
    with pytest.raises(ValueError, match="at least one node"):
        makespan(runs, minutes, 0)


@pytest.mark.slow
def test_plan_for_power_reads_a_folders_spreads_and_prices_the_seeds_each_finding_needs(tiny_run, all_trained, capsys):
    settings, _, _, _, _ = tiny_run
    args = ["reproduce", "--dataset", "synthetic", "--width", "0.0625", "--plan", "--power", settings.out]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 seed(s) of the nets" in out and "| depth helps: B (13 layers) beats A (11) | nets | 2 |" in out
    assert "--seeds" in out and "time for them here" in out and "time per seed here" in out
    assert main([*args[:-2], "--power", str(Path(settings.out) / "A_256_seed0")]) == 2  # not a reproduction's folder
    assert "no reproduce_settings.json" in capsys.readouterr().err
    assert main(["reproduce", "--power", settings.out]) == 2 and "goes with --plan" in capsys.readouterr().err


@pytest.mark.slow
def test_a_report_rebuilt_from_its_json_alone_is_the_same_report(tiny_run, all_trained, tmp_path):
    """docs/publish_reproduction.py --from-json republishes a report from its JSON when the run folders are gone:
    the same Markdown and JSON as the report written from the runs' posteriors."""
    from vggnet.reproduce.published import read_report, rebuild
    from vggnet.reproduce.record import json_safe

    settings, runs, _, _, _ = tiny_run
    md, data, _ = build_report(settings, runs)
    path = tmp_path / "reproduce.json"
    path.write_text(json.dumps(json_safe(data)))
    again, rebuilt, _ = rebuild(path)
    assert again == md and json.loads(json.dumps(json_safe(rebuilt))) == json.loads(path.read_text())
    path.write_text('{"settings": {}}')
    with pytest.raises(ValueError, match="not a reproduction's report .it lacks runs, cells"):
        read_report(path)


def test_plan_for_power_reads_a_published_report(monkeypatch, capsys, tmp_path):
    """A newcomer has no finished folder: the reports vggnet ships (docs/reproduce*.json) plan for power as well,
    from the findings they record; only the cost is measured here (replaced by a fixed one in this test)."""
    import vggnet.reproduce.cost as cost_module
    from vggnet.reproduce.cost import Cost

    measured = []
    rates = Cost({x: 2000.0 for x in LETTERS}, {"fashion-mnist": 5000, "fashion-mnist-scaled": 5000}, 5000)
    rates.test_images = {"fashion-mnist": 10000, "fashion-mnist-scaled": 10000}
    monkeypatch.setattr(cost_module, "measure_cost", lambda s: measured.append(s) or rates)
    report = Path(__file__).resolve().parents[1] / "docs" / "reproduce.json"
    assert main(["reproduce", "--plan", "--power", str(report)]) == 0
    out = capsys.readouterr().out
    published = json.loads(report.read_text())
    lrn = published["findings"][0]
    row = next(line for line in out.splitlines() if line.startswith(f"| {lrn['claim']} |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    power = f"{100 * lrn['power_at_paper']:.0f} %"
    assert cells[1:5] == ["nets", str(lrn["seeds"]), power, str(lrn["seeds_for_power"])]
    assert measured[0].seeds == published["settings"]["seeds"] and "run it with these flags" in out
    (tmp_path / "other.json").write_text('{"settings": {}}')
    assert main(["reproduce", "--plan", "--power", str(tmp_path / "other.json")]) == 2
    assert "is not a reproduction's report" in capsys.readouterr().err
