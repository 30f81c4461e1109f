"""Knowledge distillation: a student learns from a teacher's softened outputs as well as the
labels; the teacher is trained first on the same data and is never judged on test."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.data.dataset import Splits
from mnist_search.errors import ConfigError
from mnist_search.net.spec import ArchSpec, ConvLayer
from mnist_search.training.loop import SettingsError, Speed, TrainConfig, soft_targets, train
from mnist_search.training.retrain import SpecFile, teach

SMALL = ArchSpec((ConvLayer(8, pool=True), ConvLayer(8)), head="gap")
TEACHER = {
    "spec": {
        "convs": [{"out_channels": 16, "pool": True}, {"out_channels": 16}],
        "head": "gap",
        "batchnorm": True,
    },
    "training": {"optimizer": "adam", "lr": 0.01, "batch_size": 64},
    "epochs": 2,
    "seed": 7,
}
STUDENT = {
    "spec": {"convs": [{"out_channels": 4, "pool": True}, {"out_channels": 4}], "head": "gap"},
    "training": {"optimizer": "adam", "lr": 0.003, "batch_size": 64},
}


class Sealed:
    """Stands for the test split: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read ({name})")

    def __len__(self):
        raise AssertionError("the test split was read (len)")


def _sealed(splits: Splits) -> Splits:
    return dataclasses.replace(splits, test=Sealed())  # type: ignore[arg-type]


def test_distill_settings_are_checked_and_left_out_of_a_recipe_without_them():
    assert "distill" not in TrainConfig().to_dict()
    assert TrainConfig(distill=0.5).to_dict()["temperature"] == 4.0
    for bad in ({"distill": -0.1}, {"distill": 1.5}, {"temperature": 0.5}, {"temperature": 30.0}):
        with pytest.raises(SettingsError, match=f"{next(iter(bad))}="):
            TrainConfig(**bad)
    for bad_type in ({"distill": True}, {"temperature": "4"}, {"distill": math.nan}):
        with pytest.raises(Exception, match=next(iter(bad_type))):
            TrainConfig(**bad_type)


def test_a_distilled_training_needs_the_teachers_outputs_for_every_image(small_splits):
    cfg = TrainConfig(distill=0.5, batch_size=64)
    with pytest.raises(SettingsError, match="needs a teacher's outputs for 2,000 images, got none"):
        train(SMALL, cfg, small_splits)
    with pytest.raises(SettingsError, match="got 10 images"):
        train(SMALL, cfg, small_splits, teacher=torch.zeros(10, 10))


def test_the_teacher_drives_the_student(small_splits):
    """A teacher sure of one class for every image, at full weight, makes the student answer that
    class for everything (about a tenth right); the same student from the labels learns."""
    n = len(small_splits.train)
    always_3 = torch.full((n, 10), -30.0)
    always_3[:, 3] = 0.0
    cfg = TrainConfig(optimizer="adam", lr=0.01, batch_size=64, epochs=4, distill=1.0)
    taught = train(SMALL, cfg, small_splits, teacher=always_3, evaluate_test=False)
    labels = train(SMALL, dataclasses.replace(cfg, distill=0.0), small_splits, evaluate_test=False)
    share_3 = (small_splits.val.labels == 3).float().mean().item() * 100
    assert taught.val_accuracy == pytest.approx(share_3, abs=0.5)
    assert labels.val_accuracy > share_3 + 10


def test_a_distilled_training_never_reads_test(small_splits):
    """The teacher is trained and its outputs computed without the test split; the student's
    training with them reads test only where asked, at its end."""
    sealed = _sealed(small_splits)
    teacher = SpecFile.parse(TEACHER, "teacher.json")
    targets, about = teach(teacher, sealed, Speed())
    assert targets.shape == (len(small_splits.train), 10)
    assert about["epochs"] == 2 and about["seed"] == 7 and about["val_accuracy"] > 30
    student = TrainConfig(optimizer="adam", lr=0.003, batch_size=64, distill=0.5)
    r = train(SMALL, student, sealed, teacher=targets, evaluate_test=False)
    assert r.test_accuracy is None and r.history
    with pytest.raises(AssertionError, match="the test split was read"):
        train(SMALL, student, sealed, teacher=targets)  # the guard itself works


def test_soft_targets_are_the_nets_log_probabilities(small_splits):
    r = train(SMALL, TrainConfig(batch_size=64), small_splits, keep_model=True)
    out = soft_targets(r.model, small_splits.val, batch=300)
    assert out.shape == (1000, 10) and not out.requires_grad
    assert torch.allclose(out.exp().sum(1), torch.ones(1000), atol=1e-4)
    acc = (out.argmax(1) == small_splits.val.labels).float().mean().item() * 100
    assert acc == pytest.approx(r.val_accuracy)


def test_a_spec_file_with_a_teacher_reads_back_what_it_records():
    net = SpecFile.parse(STUDENT, "s.json").taught_by(SpecFile.parse(TEACHER, "t.json"), 0.7, 3.0)
    again = SpecFile.parse(json.loads(json.dumps(net.to_dict())), "again.json")
    assert again == net and again.training["distill"] == 0.7 and again.teacher.seed == 7
    with pytest.raises(ConfigError, match="a teacher cannot have a teacher of its own"):
        SpecFile.parse(STUDENT | {"teacher": net.to_dict()}, "s.json")
    with pytest.raises(ConfigError, match="teacher cannot have a teacher"):
        net.taught_by(net, 0.5, 4.0)
    for name, bad in (("distill", 1.5), ("distill", math.nan), ("temperature", 0.0)):
        with pytest.raises(ConfigError, match=f"^{name} "):
            net.taught_by(net.teacher, **({"distill": 0.5, "temperature": 4.0} | {name: bad}))
    with pytest.raises(ConfigError, match="spec s.json: teacher: "):
        SpecFile.parse(STUDENT | {"teacher": {"spec": {"convs": []}}}, "s.json")


runner = CliRunner()
QUICK = ["--epochs", "1", "--train-subset", "2000", "--val-size", "1000", "--device", "cpu"]


def test_train_with_a_teacher(in_tmp, data_dir):
    (in_tmp / "s.json").write_text(json.dumps(STUDENT))
    (in_tmp / "t.json").write_text(json.dumps(TEACHER))
    args = ["train", "--spec", "s.json", "--json", "--data-dir", str(data_dir), *QUICK]
    r = runner.invoke(app, [*args, "--teacher", "t.json", "--distill", "0.7"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["teacher"]["n_params"] == 2_682 and out["teacher"]["seed"] == 7
    assert out["teacher"]["val_accuracy"] > 30 and "test_accuracy" not in out["teacher"]
    for bad, named in (
        (["--distill", "nan"], "--distill nan: must be between 0 and 1"),
        (["--distill", "2"], "--distill 2.0: must be between 0 and 1"),
        (["--temperature", "0"], "--temperature 0.0: must be between 1 and 20"),
        (["--teacher", "missing.json"], "--teacher "),
    ):
        teacher = [] if "--teacher" in bad else ["--teacher", "t.json"]
        r = runner.invoke(app, [*args, *teacher, *bad])
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], r.output


def test_the_train_commands_defaults_are_the_training_modules():
    import inspect

    from mnist_search.cli.app import train_cmd
    from mnist_search.training.loop import DISTILL, TEMPERATURE

    params = inspect.signature(train_cmd).parameters
    assert (params["distill"].default, params["temperature"].default) == (DISTILL, TEMPERATURE)
    assert TrainConfig().temperature == TEMPERATURE


@pytest.mark.slow
def test_a_final_stage_with_a_teacher_writes_a_file_that_retrains_to_its_figures(in_tmp, data_dir):
    """`optimize --final-teacher FILE`: every retraining distils from the teacher, trained once;
    the chosen net's file holds the teacher, and `train --spec` retrains both to the same
    validation figure. A bad teacher file stops the run before anything is written."""
    import optuna

    from mnist_search.search.final import teacher_fingerprint

    (in_tmp / "t.json").write_text(json.dumps(TEACHER))
    common = ["--budget", "3000", "--n-trials", "2", "--final-seeds", "1", "--final-epochs", "1"]
    common += ["--final-top", "1", "--warm-start", "none", "--space", "plain"]
    common += ["--data-dir", str(data_dir), *QUICK]
    r = runner.invoke(app, ["optimize", *common, "--final-teacher", "t.json"])
    assert r.exit_code == 0, r.output
    best = json.loads((in_tmp / "studies/budget-3000-best.json").read_text())
    assert best["training"]["distill"] == 0.5 and best["training"]["temperature"] == 4.0
    assert best["teacher"] == SpecFile.parse(TEACHER, "t").to_dict()
    names = optuna.get_all_study_names("sqlite:///studies/mnist-search.db")
    fingerprint = teacher_fingerprint(SpecFile.parse(TEACHER, "t"))
    assert [n for n in names if "-teacher-" in n] == [f"budget-3000-final-teacher-{fingerprint}"]
    again = runner.invoke(
        app, ["train", "--spec", "studies/budget-3000-best.json", "--json",
              "--data-dir", str(data_dir), "--device", "cpu"]
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    out = json.loads(again.stdout)
    assert out["teacher"]["seed"] == 7
    assert out["val_accuracy"] == pytest.approx(best["result"]["val_mean"], abs=1e-9)

    (in_tmp / "bad.json").write_text('{"spec": {"convs": []}}')
    r = runner.invoke(
        app, ["optimize", *common, "--study-name", "x", "--final-teacher", "bad.json"]
    )
    assert r.exit_code == 2 and r.output.strip().startswith("error: --final-teacher bad.json: ")
    assert "x" not in optuna.get_all_study_names("sqlite:///studies/mnist-search.db")
    (in_tmp / "bad.json").write_text(json.dumps(TEACHER | {"training": {"lr": -1.0}}))
    r = runner.invoke(
        app, ["optimize", *common, "--study-name", "x", "--final-teacher", "bad.json"]
    )
    assert r.exit_code == 2 and "--final-teacher bad.json: " in r.output and "lr=-1" in r.output
    assert "x" not in optuna.get_all_study_names("sqlite:///studies/mnist-search.db")


@pytest.mark.parametrize(
    "kind",
    ["binary", "truncated", "five", "list", "nested", "bad recipe", "deep", "no distill"],
)
def test_a_bad_teacher_is_one_line_exit_2_before_any_training(in_tmp, kind):
    """Each kind of bad teacher, given with --teacher or inside the spec file: one line naming
    it, exit 2, before the data is read (no --data-dir is given: reading would fail otherwise)."""
    student = json.dumps(STUDENT)
    given = {
        "binary": (b"\x99\x00\xff" * 1000, None),
        "truncated": (json.dumps(TEACHER)[:40].encode(), None),
        "five": (None, 5),
        "list": (None, []),
        "nested": (None, TEACHER | {"teacher": TEACHER}),
        "bad recipe": (None, TEACHER | {"training": {"lr": -1.0}}),
        "deep": (None, "DEEP"),
        "no distill": (None, TEACHER),
    }[kind]
    args = ["train", "--spec", "s.json", "--device", "cpu", "--dataset", "idx"]
    if given[0] is not None:
        (in_tmp / "t.json").write_bytes(given[0])
        (in_tmp / "s.json").write_text(student)
        args += ["--teacher", "t.json"]
        named = "--teacher t.json: "
    else:
        body = json.dumps(STUDENT | {"teacher": given[1]})
        (in_tmp / "s.json").write_text(body.replace('"DEEP"', "[" * 10_000 + "]" * 10_000))
        named = "--spec "
    r = runner.invoke(app, args)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and named in lines[0], r.output
    # (a file nested too deep is refused whole, before its teacher is looked at)
    assert "teacher" in lines[0] or given[0] is not None or kind == "deep", lines[0]
