from pathlib import Path

import pytest

from vggnet.base.settings import RUNTIME, names
from vggnet.cli import main
from vggnet.training.checkpoint import load_checkpoint
from vggnet.training.settings import TrainConfig, load_recipe, recipe_names

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "vggnet" / "recipes"


def test_every_shipped_recipe_is_a_valid_config():
    names = recipe_names()
    assert {"paper_s256", "paper_s384", "paper_jittered", "fashion_mnist", "fashion_mnist_gpu"} <= set(names)
    assert sorted(p.stem for p in SHIPPED.glob("*.toml")) == names
    for name in names:
        TrainConfig(**load_recipe(name)).check()
    assert load_recipe("paper_jittered")["scale"] == [256, 512]
    assert load_recipe("paper_s384")["lr"] == 1e-3


def test_recipes_by_name_by_path_and_as_the_readme_writes_them(tmp_path, monkeypatch):
    by_path = load_recipe(SHIPPED / "paper_s384.toml")
    assert load_recipe("paper_s384") == by_path
    monkeypatch.chdir(tmp_path)  # no recipes/ here: recipes/NAME.toml falls back to the shipped one
    assert load_recipe("recipes/paper_s384.toml") == by_path
    own = tmp_path / "paper_s384.toml"
    own.write_text('arch = "vgg13"\n')
    assert load_recipe(own) == {"arch": "vgg13"}  # a file that exists wins
    for missing in ("paper_s999", "elsewhere/paper_s384.toml", "paper_s384.yaml"):
        with pytest.raises(ValueError, match="no such recipe"):
            load_recipe(missing)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('arch = "vgg16"\nlearning_rate = 3\n', "unknown settings: learning_rate"),
        ("epochs = \n", "not valid TOML"),
        ('epochs = "ten"\n', "epochs = 'ten' is not an integer"),
        ("scale = [256, 512.5]\n", "scale = .* is not a list of integers"),
        ('nesterov = "yes"\n', "nesterov = 'yes' is not true or false"),
        ("lr = true\n", "lr = True is not a number"),
    ],
)
def test_bad_recipes_are_named_errors(tmp_path, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_recipe(bad)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"lr": -1.0}, "lr must be positive"),
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"weight_decay": float("nan")}, "weight-decay must be a finite number, got nan"),
        ({"lr": float("inf")}, "lr must be a finite number, got inf"),
        ({"scale": [512, 256]}, "Smin <= Smax"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"schedule": "cosine"}, "unknown schedule 'cosine'"),
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"subset": 0}, "subset must be at least 1"),
        ({"workers": -2}, "workers must be at least -1"),
        ({"freeze": 3}, "freeze = 3 is not a string"),
    ],
)
def test_config_checks_name_the_setting(setting, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**setting).check()


def test_resume_keeps_the_runs_settings_and_refuses_changes():
    saved = TrainConfig(arch="vgg13", lr=0.1, epochs=5, out="runs/a").to_dict()
    # flags that say how the run runs may change
    resumed = TrainConfig(epochs=9, device="cpu", out="runs/a", resume=True).resumed_from(saved)
    assert (resumed.arch, resumed.lr, resumed.epochs, resumed.device, resumed.resume) == ("vgg13", 0.1, 9, "cpu", True)
    # flags that would change what it computes are an error, not ignored
    with pytest.raises(ValueError, match=r"--lr 0\.5 \(the run has 0\.1\)"):
        TrainConfig(lr=0.5, resume=True).resumed_from(saved)
    with pytest.raises(ValueError, match="--arch 'vgg16'"):
        TrainConfig(arch="vgg16", resume=True).resumed_from(saved, given={"arch", "epochs"})
    # giving the run's own value again is fine; so is a default-valued flag the caller did not give
    assert TrainConfig(lr=0.1, resume=True).resumed_from(saved, given={"lr"}).lr == 0.1
    assert TrainConfig(resume=True).resumed_from(saved).arch == "vgg13"
    runtime = names(TrainConfig, RUNTIME)
    assert {"epochs", "device", "max_steps", "out"} <= set(runtime) and "lr" not in runtime


def test_a_resumed_run_keeps_its_own_runtime_settings_unless_they_are_typed_again():
    saved = TrainConfig(epochs=4, workers=0, val_every=1, max_steps=7, out="runs/a").to_dict()
    typed_nothing = TrainConfig(out="runs/a", resume=True).resumed_from(saved, given={"out", "resume"})
    assert (typed_nothing.epochs, typed_nothing.workers, typed_nothing.resume) == (4, 0, True)
    assert typed_nothing.max_steps is None  # a stop for the first invocation, not for the run
    typed = TrainConfig(out="runs/b", resume=True, epochs=6, max_steps=9)
    again = typed.resumed_from(saved, given={"out", "resume", "epochs", "max_steps"})
    assert (again.epochs, again.max_steps, again.out, again.workers) == (6, 9, "runs/b", 0)


def test_flags_override_the_recipe(tmp_path):
    code = main(
        [
            "train",
            "--recipe",
            "fashion_mnist",
            "--dataset",
            "synthetic",
            "--width",
            "0.0625",
            "--epochs",
            "1",
            "--max-steps",
            "1",
            "--no-progress",
            "--no-tensorboard",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0
    saved = load_checkpoint(tmp_path / "run")["config"]
    assert saved["width"] == 0.0625 and saved["dataset"] == "synthetic"
    assert saved["arch"] == load_recipe("fashion_mnist")["arch"]
    assert saved["lr"] == load_recipe("fashion_mnist")["lr"]


def test_a_new_training_option_is_one_field_and_appears_in_flags_recipes_and_resume(tmp_path, capsys):
    """Adding a setting means writing one field: its flag, help, range, recipe check and resume check follow."""
    import argparse
    import dataclasses

    from vggnet.base.settings import POSITIVE, add_flags, setting, typed

    extended = dataclasses.make_dataclass(
        "ExtendedConfig",
        [("gradient_clip", float, setting(1.0, "clip gradients to this norm", POSITIVE))],
        bases=(TrainConfig,),
    )
    parser = argparse.ArgumentParser(prog="train")
    add_flags(parser, extended, suppress=True)
    assert "clip gradients to this norm (default 1)" in " ".join(parser.format_help().split())
    assert typed(parser.parse_args(["--gradient-clip", "0.5"]), extended) == {"gradient_clip": 0.5}
    with pytest.raises(SystemExit):
        parser.parse_args(["--gradient-clip", "-1"])
    assert "argument --gradient-clip: must be positive, got -1" in capsys.readouterr().err
    recipe = tmp_path / "clip.toml"
    recipe.write_text("gradient_clip = -2.0\n")
    with pytest.raises(ValueError, match=r"recipe .*clip.toml: gradient-clip must be positive, got -2"):
        load_recipe(recipe, extended)
    recipe.write_text('gradient_clip = "high"\n')
    with pytest.raises(ValueError, match=r"setting gradient_clip = 'high' is not a number"):
        load_recipe(recipe, extended)
    saved = dataclasses.asdict(extended(gradient_clip=2.0))
    with pytest.raises(ValueError, match=r"--gradient-clip 3\.0 \(the run has 2\.0\)"):
        extended(gradient_clip=3.0).resumed_from(saved, given={"gradient_clip"})
