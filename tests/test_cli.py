"""The CLI, driven through typer's CliRunner against real studies in SQLite."""

import json
import re
import time

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.search.storage import open_storage
from mnist_search.search.study import open_study
from mnist_search.spaces import get_space
from mnist_search.spaces.plain import spec_params, training_params
from mnist_search.training.protocol import Protocol

runner = CliRunner()
QUICK = ["--epochs", "1", "--train-subset", "400", "--val-size", "1000", "--device", "cpu"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def load(name="budget-25000"):
    return optuna.load_study(study_name=name, storage="sqlite:///studies/mnist-search.db")


def test_experiments_json_gives_true_counts():
    r = run("experiments", "--json")
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    assert {x["id"]: x["true_params"] for x in rows} == {
        1: 480_176,
        2: 27_738,
        3: 4_418,
        4: 12_968,
        5: 23_426,
        6: 23_426,
    }
    assert [x["id"] for x in rows if x["count_is_wrong"]] == [1]


def test_experiments_table_flags_exp1():
    r = run("experiments")
    assert r.exit_code == 0 and "480,176" in r.stdout and "~21K" in r.stdout
    assert "(!) Exp1" in r.stdout


def test_optimize_small_study(in_tmp, data_dir):
    r = run(
        "optimize", "--budget", 25000, "--n-trials", 4, "--seed", 0, "--data-dir", data_dir, *QUICK
    )
    assert r.exit_code == 0, r.output
    assert "optuna-dashboard sqlite:///studies/mnist-search.db" in r.stdout
    trials = load().get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(trials) == 4
    # The rest of the start-up design waits for the next run (2 warm starts + 8 design points).
    assert len(load().get_trials(states=(TrialState.WAITING,))) == 6
    for t in trials:
        assert t.user_attrs["n_params"] <= 25000
        assert t.constraints["budget"] <= 0
        for key in ("architecture", "epochs", "batch_size", "device", "seconds", "spec"):
            assert key in t.user_attrs
        assert t.intermediate_values  # reported during training
        if t.state == TrialState.COMPLETE:
            assert 0 <= t.user_attrs["test_accuracy"] <= 100
    # Running again with the same name resumes the study.
    r = run(
        "optimize", "--budget", 25000, "--n-trials", 1, "--seed", 1, "--data-dir", data_dir, *QUICK
    )
    assert r.exit_code == 0, r.output
    assert len(load().get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 5
    assert len(load().get_trials()) == 10  # the design is queued once, not again


def test_same_seed_same_study(tmp_path, monkeypatch, data_dir):
    values = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        monkeypatch.chdir(tmp_path / sub)
        r = run(
            "optimize",
            "--budget",
            8000,
            "--n-trials",
            3,
            "--seed",
            3,
            "--data-dir",
            data_dir,
            *QUICK,
        )
        assert r.exit_code == 0, r.output
        values.append(
            [(t.params, t.value, t.intermediate_values) for t in load("budget-8000").get_trials()]
        )
    assert values[0] == values[1]


def test_over_budget_and_diverging_trials_are_pruned_not_failed(in_tmp, data_dir, mnist):
    """An enqueued over-budget net costs no training; a NaN loss prunes with its reason."""
    from mnist_search.data.mnist import make_splits
    from mnist_search.replay.experiments import get_experiment
    from mnist_search.search.objective import Objective

    storage = open_storage("sqlite:///s.db")
    protocol = Protocol(epochs=1, train_subset=300, val_size=1000)
    study = open_study(storage, "s", 25000, protocol, seed=0, space="plain")
    hp = {"batch_size": 512, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9}
    study.enqueue_trial(spec_params(get_experiment(1).spec) | training_params(hp))
    study.enqueue_trial(
        spec_params(get_experiment(3).spec) | training_params({**hp, "lr": 1e9, "batch_size": 32}),
        skip_if_exists=False,
    )
    splits = make_splits(mnist, "cpu", val_size=1000, train_subset=300)
    with pytest.warns(UserWarning, match="out of range"):
        study.optimize(Objective(25000, protocol, splits, space="plain"), n_trials=2)
    over, nan = study.get_trials()
    assert over.state == TrialState.PRUNED and over.user_attrs["n_params"] == 480_176
    assert over.constraints["budget"] == 480_176 - 25000 and not over.intermediate_values
    assert over.user_attrs["pruned_reason"].startswith("over budget")
    assert nan.state == TrialState.PRUNED and "diverged" in nan.user_attrs["pruned_reason"]


def test_existing_study_with_another_budget_is_refused(in_tmp, data_dir):
    storage = open_storage("sqlite:///studies_x.db")
    open_study(storage, "mine", 5000, Protocol())
    r = run(
        "optimize",
        "--budget",
        6000,
        "--study-name",
        "mine",
        "--storage",
        "sqlite:///studies_x.db",
        "--n-trials",
        1,
        "--data-dir",
        data_dir,
    )
    assert r.exit_code == 2
    assert "exists with --budget 5000, not --budget 6000; use that" in r.stderr
    assert len(load_trials("mine", "sqlite:///studies_x.db")) == 0


def test_a_study_reads_back_what_it_was_made_for(in_tmp):
    from mnist_search.search.study import StudyAttrs

    protocol = Protocol(epochs=2, train_subset=400, val_size=1000)
    study = open_study(open_storage("sqlite:///a.db"), "a", 5000, protocol, space="plain")
    attrs = StudyAttrs.of(study)
    assert attrs == StudyAttrs(5000, get_space("plain").version, protocol)
    assert study.user_attrs == attrs.stored()  # JSON values only, nothing else stored


def test_existing_study_with_another_protocol_names_the_flags(in_tmp, data_dir):
    open_study(
        open_storage("sqlite:///p.db"),
        "p",
        5000,
        Protocol(epochs=1, train_subset=400, val_size=1000),
    )
    r = run(
        "optimize",
        "--budget",
        5000,
        "--study-name",
        "p",
        "--storage",
        "sqlite:///p.db",
        "--n-trials",
        1,
        "--data-dir",
        data_dir,
        "--epochs",
        2,
        "--device",
        "cpu",
    )
    assert r.exit_code == 2
    assert (
        "exists with --epochs 1 --train-subset 400 --val-size 1000, not --epochs 2 "
        "--val-size 5000; use those or another --study-name"
    ) in r.stderr
    assert "{" not in r.stderr  # no Python reprs


def test_version():
    from mnist_search import __version__

    r = run("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"mnist-search {__version__}"


def load_trials(name, url):
    return optuna.load_study(study_name=name, storage=url).get_trials()


@pytest.mark.parametrize(
    "args, message",
    [
        (["optimize", "--budget", 0], "--budget 0: must be a positive"),
        (
            ["optimize", "--budget", 50],
            "--budget 50 is below the smallest net in the modern search space (246",
        ),
        (
            ["optimize", "--budget", 50, "--space", "plain"],
            "--budget 50 is below the smallest net in the plain search space (90",
        ),
        (["optimize", "--epochs", 0], "--epochs 0: must be at least 1"),
        (["optimize", "--n-trials", 0], "--n-trials 0"),
        (["optimize", "--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu"),
        (["optimize", "--device", "cuda:3"], "device 'cuda:3' is not there"),
        (["optimize", "--storage", "notaurl"], "storage URL 'notaurl' is malformed"),
        (["optimize", "--storage", "sqlite:///no/such/dir/x.db"], "does not exist"),
        (["optimize", "--pruner", "sometimes"], "--pruner 'sometimes'; valid: rungs, median"),
        (
            ["optimize", "--train-subset", 59000],
            "--train-subset 59000: must be between 1 and 55,000",
        ),
        (
            ["optimize", "--data-dir", "/no/such/folder"],
            "data folder /no/such/folder does not exist",
        ),
        (["train", "--experiment", 9], "unknown experiment 9; valid: 1, 2, 3, 4, 5, 6"),
        (["train"], "give exactly one of --spec FILE or --experiment N"),
        (["train", "--spec", "missing.json"], "--spec missing.json: cannot read it"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(in_tmp, args, message):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert list(in_tmp.iterdir()) == []


def test_corrupt_data_dir_is_refused_before_the_study_is_made(in_tmp, data_dir):
    from mnist_search.data.mnist import read_folder

    bad = in_tmp.parent / "bad-mnist"
    bad.mkdir(exist_ok=True)
    for name, raw in read_folder(data_dir).items():
        (bad / name).write_bytes(raw[:-1] + b"\1" if name.startswith("train-labels") else raw)
    r = run("optimize", "--n-trials", 1, "--data-dir", bad)
    assert r.exit_code == 2 and "train-labels-idx1-ubyte has MD5" in r.stderr
    assert list(in_tmp.iterdir()) == []


def test_train_spec_file_json(in_tmp, data_dir):
    spec = {
        "spec": {"convs": [{"out_channels": 8, "pool": True}, {"out_channels": 8}], "head": "gap"},
        "training": {"optimizer": "adam", "lr": 0.003, "batch_size": 64},
    }
    (in_tmp / "net.json").write_text(json.dumps(spec))
    r = run("train", "--spec", "net.json", "--json", "--data-dir", data_dir, *QUICK)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) == {
        "n_params",
        "architecture",
        "epochs",
        "batch_size",
        "device",
        "train_accuracy",
        "val_accuracy",
        "test_accuracy",
        "seconds",
        "images_per_second",
        "speed",
    }
    assert out["speed"] == {
        "amp": False,
        "channels_last": False,
        "cudnn_benchmark": False,
        "compile": False,
    }  # the CPU defaults
    assert out["n_params"] == 8 * 9 + 8 + 8 * 8 * 9 + 8 + 8 * 10 + 10
    assert out["batch_size"] == 64 and out["device"] == "cpu"


def test_train_experiment_6_one_epoch_beats_95(data_dir):
    """The write-up's best net under the documented protocol, one full epoch on all 55,000."""
    r = run("train", "--experiment", 6, "--json", "--data-dir", data_dir, "--device", "cpu")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["n_params"] == 23_426 and out["batch_size"] == 128 and out["epochs"] == 1
    assert out["test_accuracy"] > 95.0


def _retrain(spec, seeds, data_dir):
    """``train --spec`` on the quick split the searches of these tests use."""
    return run(
        "train", "--spec", spec, "--seeds", seeds, "--train-subset", 400, "--val-size", 1000,
        "--device", "cpu", "--data-dir", data_dir, "--json",
    )  # fmt: skip


def test_two_stage_search_retrains_the_best_and_writes_a_reproducible_spec(in_tmp, data_dir):
    args = [
        "optimize",
        "--budget",
        3000,
        "--n-trials",
        3,
        "--seed",
        1,
        "--data-dir",
        data_dir,
        *QUICK,
        "--final-seeds",
        2,
        "--final-top",
        2,
        "--final-epochs",
        2,
    ]
    r = run(*args)
    assert r.exit_code == 0, r.output
    search, final = load("budget-3000"), load("budget-3000-final")
    best = sorted(
        (t for t in search.trials if t.state == TrialState.COMPLETE), key=lambda t: -t.value
    )[:2]
    runs = [t for t in final.trials if t.state == TrialState.COMPLETE]
    assert sorted((t.user_attrs["source_trial"], t.user_attrs["seed"]) for t in runs) == sorted(
        (b.number, s) for b in best for s in (0, 1)
    )
    for t in runs:  # the same net and recipe as its source, trained at the final length
        src = search.trials[t.user_attrs["source_trial"]]
        assert t.user_attrs["spec"] == src.user_attrs["spec"]
        assert t.user_attrs["epochs"] == 2 and t.user_attrs["training"]["epochs"] == 2
        assert t.user_attrs["training"]["lr"] == src.user_attrs["training"]["lr"]
    chosen = json.loads((in_tmp / "studies" / "budget-3000-best.json").read_text())
    assert chosen["epochs"] == 2 and chosen["n_params"] <= 3000
    assert "chosen: trial" in r.stdout and "± " in r.stdout
    # Where the chosen net came from, said in the summary and the file: the warm starts (the
    # shipped nets, widened) are trials 0 and 1 here; what the search sampled itself is apart.
    source = search.trials[chosen["source_trial"]]
    warm = source.user_attrs.get("warm_start")
    expected = f"a shipped net widened to the budget ({warm})" if warm else "sampled by this search"
    assert chosen["origin"] == expected and f": {expected}" in r.stdout
    sampled = [
        t
        for t in search.trials
        if t.state == TrialState.COMPLETE and "warm_start" not in t.user_attrs
    ]
    top = max(sampled, key=lambda t: t.value)
    assert chosen["best_sampled"]["trial"] == top.number
    assert f"best net this search sampled: trial {top.number}," in r.stdout
    # The report of the search shows its final stage: the candidates and the chosen one.
    rep = run("report", "--study-name", "budget-3000", "--out", in_tmp / "r.html")
    assert rep.exit_code == 0, rep.output
    page = (in_tmp / "r.html").read_text()
    assert "<h2>Final stage</h2>" in page and page.count('class="final-row"') == 2
    assert f"<td>{chosen['source_trial']}</td>" in page and "<td>chosen</td>" in page
    assert f"{chosen['result']['test_mean']:.2f} ± " in page
    # the printed export points at the retrained net, not the search's short-trained best
    assert "--study-name budget-3000-final --out best-net" in r.stdout
    # The chosen one has the best mean validation accuracy of the retrained candidates.
    by_source = {}
    for t in runs:
        by_source.setdefault(t.user_attrs["source_trial"], []).append(t)
    mean_val = {k: sum(t.value for t in v) / len(v) for k, v in by_source.items()}
    assert chosen["source_trial"] == max(mean_val, key=mean_val.get)
    assert chosen["result"]["val_mean"] == pytest.approx(max(mean_val.values()))
    assert chosen["result"]["test_accuracy"] == [
        t.user_attrs["test_accuracy"] for t in by_source[chosen["source_trial"]]
    ]

    # Training the written file with the same seeds reproduces the recorded accuracies.
    r2 = _retrain(in_tmp / "studies" / "budget-3000-best.json", 2, data_dir)
    assert r2.exit_code == 0, r2.output
    again = json.loads(r2.stdout)
    assert again["epochs"] == 2
    assert [x["test_accuracy"] for x in again["runs"]] == pytest.approx(
        chosen["result"]["test_accuracy"]
    )
    assert again["test_mean"] == pytest.approx(chosen["result"]["test_mean"])

    # A rerun of the same command trains no final run twice.
    r3 = run(*args[:4], 1, *args[5:])
    assert r3.exit_code == 0, r3.output
    pairs = [
        (t.user_attrs["source_trial"], t.user_attrs["seed"])
        for t in load("budget-3000-final").trials
    ]
    assert len(pairs) == len(set(pairs)) and set(pairs) >= {
        (t.user_attrs["source_trial"], t.user_attrs["seed"]) for t in runs
    }


def test_final_augment_retrains_finalists_with_it_in_a_study_of_their_own(in_tmp, data_dir):
    """--final-augment small: every retraining and the spec file use it whatever the trial's
    recipe said; the retrainings live apart from a final stage of the recipes' own; the spec
    file reproduces them."""
    args = ["optimize", "--budget", 3000, "--n-trials", 2, "--seed", 2, "--data-dir", data_dir]
    final = ["--final-seeds", 1, "--final-top", 1, "--final-epochs", 1]
    r = run(*args, *QUICK, *final, "--final-augment", "small")
    assert r.exit_code == 0, r.output
    assert "each with augmentation small" in r.stdout
    names = optuna.get_all_study_names("sqlite:///studies/mnist-search.db")
    assert "budget-3000-final-augment-small" in names and "budget-3000-final" not in names
    runs = load("budget-3000-final-augment-small").trials
    search = load("budget-3000")
    assert runs and all(t.user_attrs["training"]["augment"] == "small" for t in runs)
    for t in runs:  # the rest of the recipe is the search trial's own (the seed is the run's)
        src = search.trials[t.user_attrs["source_trial"]].user_attrs["training"]
        assert {
            k: v for k, v in t.user_attrs["training"].items() if k not in ("augment", "seed")
        } == {k: v for k, v in src.items() if k not in ("augment", "seed")}
    spec = json.loads((in_tmp / "studies" / "budget-3000-best.json").read_text())
    assert spec["training"]["augment"] == "small"
    again = _retrain(in_tmp / "studies" / "budget-3000-best.json", 1, data_dir)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["val_accuracy"] == pytest.approx(
        spec["result"]["val_accuracy"][0]
    )
    # The same search with each finalist's own recipe is a final stage of its own.
    r2 = run(*args, *QUICK, *final)
    assert r2.exit_code == 0, r2.output
    own = load("budget-3000-final").trials
    assert own and all(t.user_attrs["training"]["augment"] == "none" for t in own)


def test_final_options_are_checked(in_tmp, data_dir):
    for args, message in (
        (["--final-seeds", -1], "--final-seeds -1"),
        (["--final-epochs", 0], "--final-epochs 0"),
        (["--final-epochs", "soon"], "--final-epochs 'soon': must be 'auto' or"),
        (["--final-top", 0], "--final-top 0"),
        (["--space", "fancy"], "--space 'fancy'; valid: modern, plain"),
        (["--final-augment", "strong"], "--final-augment 'strong'; valid: own (each"),
        (["--final-augment", "Small"], "--final-augment 'Small'; valid: own (each"),
        (["--final-augment", ""], "--final-augment ''; valid: own (each"),
    ):
        r = run("optimize", "--n-trials", 1, "--data-dir", data_dir, *QUICK, *args)
        assert r.exit_code == 2 and message in r.output, r.output
        assert not (in_tmp / "studies").exists()
    r = run("train", "--experiment", 6, "--seeds", 0)
    assert r.exit_code == 2 and "--seeds 0: must be at least 1" in r.output


def test_successive_halving_search_trains_the_promising_longer(in_tmp, data_dir):
    """--pruner sha --epochs 3: every trial reports after its first epoch; only those in the best
    third of that rung train on (or the first ones, while a rung is still filling)."""
    r = run(
        "optimize",
        "--budget",
        3000,
        "--n-trials",
        9,
        "--epochs",
        3,
        "--pruner",
        "sha",
        "--seed",
        4,
        "--warm-start",
        "none",
        "--final-seeds",
        0,
        "--train-subset",
        300,
        "--val-size",
        300,
        "--device",
        "cpu",
        "--data-dir",
        data_dir,
    )
    assert r.exit_code == 0, r.output
    trials = load("budget-3000").get_trials()
    lengths = [len(t.intermediate_values) for t in trials]  # reports: 1 per epoch from 3 epochs
    assert all(n >= 1 for n in lengths)
    stopped = [t for t in trials if t.state == TrialState.PRUNED]
    assert stopped and all(len(t.intermediate_values) < 3 for t in stopped)
    assert any(n == 3 for n in lengths)


def test_time_set_final_stage_gives_later_candidates_the_time_earlier_ones_left(in_tmp, data_dir):
    """With --timeout and automatic lengths, each finalist's length is set as it starts, the
    later ones from the time left and the per-epoch time this stage measured; the run stays
    inside its limit (a margin of a few seconds for the last evaluation and the summary)."""
    start = time.time()
    r = run(
        "optimize",
        "--budget",
        3000,
        "--timeout",
        40,
        "--seed",
        1,
        "--data-dir",
        data_dir,
        "--train-subset",
        2000,
        "--val-size",
        500,
        "--device",
        "cpu",
    )
    wall = time.time() - start
    assert r.exit_code == 0, r.output
    lines = [x for x in r.stderr.splitlines() if x.startswith("final stage: trial ")]
    assert len(lines) == 2, r.stderr
    assert "measured" not in lines[0] and "(measured on 1 finished run(s))" in lines[1]
    assert wall < 40 * 1.15, wall
    final = load("budget-3000-final-auto")
    epochs = {t.user_attrs["source_trial"]: t.user_attrs["epochs"] for t in final.trials}
    for line in lines:  # what was announced is what was trained
        n, e = re.match(r"final stage: trial (\d+) gets (\d+) epoch", line).groups()
        assert epochs[int(n)] == int(e)


def test_final_incumbent_retrains_the_best_warm_start_beside_the_finalists(in_tmp, data_dir):
    """--final-incumbent: the best trial the warm start queued is retrained with the finalists
    whether or not it is one; the final stage still chooses on validation."""
    from mnist_search.search.final_time import finalists
    from mnist_search.search.records import Origin, TrialRecord, complete

    # At 600 parameters the shipped nets, narrowed, lose to a net this search samples.
    args = ["optimize", "--budget", 600, "--n-trials", 8, "--seed", 1, "--data-dir", data_dir]
    args += ["--epochs", 1, "--train-subset", 1000, "--val-size", 1000, "--device", "cpu"]
    final = ["--final-seeds", 1, "--final-top", 1, "--final-epochs", 1, "--final-incumbent"]
    r = run(*args, *final)
    assert r.exit_code == 0, r.output
    search = load("budget-600")
    starts = [t for t in complete(search) if t.origin is Origin.WARM_START]
    assert starts, [TrialRecord.of(t).origin for t in search.trials]
    best_start = min(starts, key=lambda t: (-(t.val_accuracy or 0.0), t.n_params or 0))
    top = finalists(search, 1)[0]
    assert top.number != best_start.number  # so the incumbent is one more candidate
    runs = load("budget-600-final").trials
    assert {t.user_attrs["source_trial"] for t in runs} == {top.number, best_start.number}
    chosen = json.loads((in_tmp / "studies" / "budget-600-best.json").read_text())
    best_run = max(runs, key=lambda t: t.value)
    assert chosen["source_trial"] == best_run.user_attrs["source_trial"]
