"""Deep nets that can train before their depth is judged, and the paper's statements on stalls tested as it made them:
the uncopied layers' initialisation keeps the signal's scale, a warm-up, a cap on the first rate, the rate held
while a run sits at chance, the three arms of the stall test with equal budgets, and plans made before all this kept
as they were."""

from dataclasses import replace

import pytest
import torch
from helpers import tiny_config

from vggnet.network.layers import init_weights
from vggnet.network.model import build
from vggnet.reproduce.plan import Settings, plan, train_config
from vggnet.reproduce.recorded import backfilled, command_line
from vggnet.reproduce.results import Results
from vggnet.reproduce.stalls import arm_finding, compare_starts, stall_findings
from vggnet.reproduce.stats import CONTRADICTED, HOLDS, NOT_RESOLVED, TOO_FEW
from vggnet.training.loop import train
from vggnet.training.schedule import Schedule
from vggnet.training.settings import TrainConfig


def by_name(runs):
    return {r.name: r for r in runs}


def test_the_stall_test_gives_every_arm_the_same_budget_and_holds_the_rate_at_chance(tmp_path):
    settings = Settings(seeds=1, scale_seeds=0, out=str(tmp_path))
    runs = by_name(plan(settings))
    arms = {n: r for n, r in runs.items() if r.arm}
    assert set(arms) == {
        "A_256_normal_seed0", "D_256_normal_seed0", "E_256_normal_seed0", "D_256_preinit_normal_seed0",
        "E_256_preinit_normal_seed0", "D_256_scratch_seed0", "E_256_scratch_seed0",
    }  # fmt: skip
    configs = {n: train_config(r, settings) for n, r in arms.items()}
    assert {c.epochs for c in configs.values()} == {settings.stall_epochs} and all(
        c.hold_at_chance for c in configs.values()
    )
    assert {c.warmup_epochs for c in configs.values()} == {settings.warmup_epochs}  # the same start for every arm
    assert configs["D_256_normal_seed0"].init == "normal" and configs["D_256_normal_seed0"].preinit is None
    paper = configs["D_256_preinit_normal_seed0"]
    assert paper.init == "normal" and paper.preinit.endswith(
        "A_256_seed0/model.safetensors"
    )  # A's layers, the rest N(0, 0.01)
    assert configs["D_256_scratch_seed0"].init == settings.init_scheme == "xavier"
    d = train_config(runs["D_256_seed0"], settings)  # the depth findings' D: the uncopied layers keep the scale
    assert (d.init, d.epochs, d.final_decay, d.warmup_epochs) == ("he", 50, 10, 1.0)  # its first rate at most 40
    assert train_config(runs["A_256_seed0"], settings).init == "xavier"
    bn = Settings(seeds=1, scale_seeds=1, batch_norm=True, out=str(tmp_path))
    assert not [r for r in plan(bn) if r.arm]  # with BN every net is from scratch: no stall test
    large = by_name(plan(replace(settings, scale_seeds=1)))["D_384_scaled_seed0"]
    assert train_config(large, settings).warmup_epochs == 0 and train_config(large, settings).final_decay == 3


def test_a_folder_made_before_these_settings_keeps_its_plan_and_says_how_to_run_it_again():
    old = backfilled({"epochs": 24, "patience": 2, "subset": 10000, "seeds": 8, "scale_seeds": 2})
    settings = Settings(**old)
    runs = by_name(plan(settings))
    assert len(runs) == 78 and not [r for r in runs.values() if r.arm and r.arm != "scratch"]
    scratch = runs["D_256_scratch_seed0"]
    assert (scratch.epochs, scratch.hold_at_chance) == (24, False)
    cfg = train_config(runs["D_256_seed0"], settings)
    assert (cfg.init, cfg.final_decay, cfg.warmup_epochs, cfg.hold_at_chance) == ("xavier", 3, 0.0, False)
    line = command_line(settings)
    for flag in ("--epochs 24", "--first-rate-cap 21", "--warmup-epochs 0.0", "--no-hold-at-chance", "--no-stall-test",
                 "--rest-init same", "--seeds 8", "--scale-seeds 2"):  # fmt: skip
        assert flag in line, (flag, line)


def test_the_uncopied_layers_initialisation_keeps_the_signals_scale():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 28, 28)
    scale = {}
    for scheme in ("he", "xavier"):
        net = build("vgg19", width=0.25, in_channels=1, num_classes=10, pool_size=1, fc_width=64, ceil_mode=True)
        init_weights(net, scheme)
        with torch.no_grad():
            taps = net.extract(x, ["relu1_1", "relu5_4"])
        scale[scheme] = (taps["relu5_4"].pow(2).mean() / taps["relu1_1"].pow(2).mean()).sqrt().item()
    assert 0.2 < scale["he"] < 5 and scale["xavier"] < scale["he"] / 10  # Glorot's halves it at every layer
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 8)
    init_weights(net, "he")
    fan_in = conv.in_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)


def test_the_plateau_rule_warms_up_and_never_cuts_the_rate_of_a_run_at_chance(tmp_path):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    optimizer.param_groups[0]["lr_scale"] = 1.0
    cfg = TrainConfig(schedule="plateau", warmup_epochs=2, lr=0.01, epochs=10, hold_at_chance=True, patience=0)
    schedule = Schedule(optimizer, cfg, steps_per_epoch=10, classes=4)
    seen = []
    for step in (0, 10, 20, 30):
        optimizer.param_groups[0]["lr"] = -1.0  # what the plateau rule would have set: untouched after the warm-up
        schedule.before_step(step)
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([0.001, 0.0055, 0.01, -1.0])
    optimizer.param_groups[0]["lr"] = 0.01
    assert not schedule.counts(1, 0.9) and schedule.counts(2, 0.9) and not schedule.counts(2, 0.3)  # chance: 0.25
    for epoch, top1 in enumerate([0.5, 0.5, 0.3, 0.3, 0.3]):  # the warm-up's epochs, then epochs at chance
        assert not schedule.after_validation(epoch, top1)
    assert optimizer.param_groups[0]["lr"] == 0.01 and schedule.decays == 0
    assert not schedule.after_validation(5, 0.6) and not schedule.after_validation(6, 0.6)  # counted: cut at once
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001) and schedule.decays == 1
    # a net that stays at chance (no BN, N(0, 0.01) at a narrow width): patience 0 cuts the rate every epoch,
    # unless epochs at chance do not count
    stuck = dict(arch="vgg11", init="normal", epochs=3, patience=0, max_decays=5, val_split=64)
    cut = train(tiny_config(tmp_path / "cut", **stuck))
    held = train(tiny_config(tmp_path / "held", **stuck, hold_at_chance=True))
    assert cut.val_top1_err > 0.7 and held.val_top1_err > 0.7  # both at chance (4 classes)
    assert cut.history[-1]["lr"] < 0.01 and [h["lr"] for h in held.history] == [0.01] * 3


def test_the_first_rate_is_capped_by_a_forced_decay_that_the_rule_then_counts():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    cfg = TrainConfig(schedule="plateau", lr=0.1, epochs=6, final_decay=2, patience=5, max_decays=1)
    schedule = Schedule(optimizer, cfg, steps_per_epoch=10, classes=4)
    ended = [schedule.after_validation(epoch, 0.5 + epoch / 10) for epoch in range(4)]  # improving: never cut
    assert ended == [False] * 4 and schedule.decays == 1  # but the last 2 epochs run at a tenth
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01) and schedule.plateau.num_bad_epochs == 0
    state = schedule.state_dict()
    assert set(state) == {"plateau", "decays"} and state["plateau"] == schedule.plateau.state_dict()
    again = Schedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01), cfg, 10, 4)
    again.load_state_dict(state)
    assert again.decays == 1 and again.plateau.best == schedule.plateau.best
    assert not again.after_validation(4, 0.3) and again.plateau.num_bad_epochs == 1  # the restored best counts


class Recorded(Results):
    """Runs that stalled where ``stuck`` says, for the stall findings."""

    def __init__(self, settings, stuck):
        super().__init__(settings, plan(settings), splits=())
        self.stuck_runs = stuck
        for r in self.runs:
            self.saved["val"][r.name] = {"meta": {}, "tensors": {}}

    def left_chance(self, run):
        return run not in self.stuck_runs


def test_the_stall_findings_judge_each_arm_and_the_papers_reason_to_pre_initialise():
    settings = Settings(seeds=4, scale_seeds=0, nets=["A", "D", "E"])
    normal = {f"{x}_256_normal_seed{s}" for x in "DE" for s in range(4)}
    glorot = {f"D_256_scratch_seed{s}" for s in range(4)}  # half of Glorot's runs
    found = {f.id: f for f in stall_findings(Recorded(settings, normal | glorot | {"A_256_normal_seed0"}))}
    assert found["stall-normal"].verdict == HOLDS and found["stall-normal"].stalled == [8, 8]
    assert "the control: 1 of 4" in found["stall-normal"].reason
    assert found["stall-preinit-normal"].verdict == HOLDS and found["stall-preinit-normal"].effect.effect == 0
    assert found["stall-scratch"].verdict == NOT_RESOLVED  # 4 of 8: neither side of one half
    assert found["stall"].verdict == HOLDS and found["stall"].effect.effect == 100
    everything = {r.name for r in plan(settings) if r.arm == "preinit_normal"}
    assert arm_finding(Recorded(settings, everything), "preinit_normal").verdict == CONTRADICTED
    few = Settings(seeds=2, scale_seeds=0, nets=["A", "D", "E"])
    assert compare_starts(Recorded(few, set()), "normal", "preinit_normal", "from N(0, 0.01)").verdict == TOO_FEW


def test_too_few_seeds_of_the_training_scales_is_said_before_anything_runs(tmp_path, capsys):
    from vggnet.reproduce.runs import accepted

    tiny = dict(dataset="synthetic", width=1 / 16, epochs=1, val_split=48, progress=False, nets=["A"])
    accepted(Settings(**tiny, seeds=1, scale_seeds=2, out=str(tmp_path / "two")), [])
    assert "2 seed(s) of the training scales give the scale findings" in capsys.readouterr().err
    accepted(Settings(**tiny, seeds=1, scale_seeds=5, out=str(tmp_path / "five")), [])
    assert "note" not in capsys.readouterr().err
