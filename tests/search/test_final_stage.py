"""The final stage end to end through the CLI: finalists retrained, chosen on validation, written as
a spec file that reproduces them; after a kill it finishes the seeds it had not."""

import json
import re
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from mnist_search.cli.app import app

runner = CliRunner()


QUICK = ["--epochs", "1", "--train-subset", "400", "--val-size", "1000", "--device", "cpu"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def load(name="budget-25000"):
    return optuna.load_study(study_name=name, storage="sqlite:///studies/mnist-search.db")


def _retrain(spec, seeds, data_dir):
    """``train --spec`` on the quick split the searches of these tests use."""
    return run(
        "train", "--spec", spec, "--seeds", seeds, "--train-subset", 400, "--val-size", 1000,
        "--device", "cpu", "--data-dir", data_dir, "--json",
    )  # fmt: skip


@pytest.mark.slow
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
    # shipped nets, fitted) are trials 0 and 1 here; what the search sampled itself is apart.
    from mnist_search.search.records import TrialRecord

    source = search.trials[chosen["source_trial"]]
    warm = source.user_attrs.get("warm_start")
    expected = TrialRecord.of(source).provenance if warm else "sampled by this search"
    assert not warm or expected.startswith("a shipped net ")
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


@pytest.mark.slow
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
        (["--space", "fancy"], "--space 'fancy'; valid: modern, tiny, plain"),
        (["--final-augment", "strong"], "--final-augment 'strong'; valid: own (each"),
        (["--final-augment", "Small"], "--final-augment 'Small'; valid: own (each"),
        (["--final-augment", ""], "--final-augment ''; valid: own (each"),
    ):
        r = run("optimize", "--n-trials", 1, "--data-dir", data_dir, *QUICK, *args)
        assert r.exit_code == 2 and message in r.output, r.output
        assert not (in_tmp / "studies").exists()
    r = run("train", "--experiment", 6, "--seeds", 0)
    assert r.exit_code == 2 and "--seeds 0: must be at least 1" in r.output


@pytest.mark.slow
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


@pytest.mark.slow
def test_final_incumbent_retrains_the_best_warm_start_beside_the_finalists(in_tmp, data_dir):
    """--final-incumbent: the best trial the warm start queued is retrained with the finalists
    whether or not it is one; the final stage still chooses on validation. (At 1,000, a budget
    every shipped set has a row for, so the warm start has a net to queue.)"""
    from optuna.trial import create_trial

    from mnist_search.search.final_time import finalists
    from mnist_search.search.records import Origin, TrialRecord, complete

    args = ["optimize", "--budget", 1000, "--seed", 1, "--data-dir", data_dir, "--pruner", "none"]
    args += ["--epochs", 1, "--train-subset", 1000, "--val-size", 1000, "--device", "cpu"]
    r = run(*args, "--n-trials", 4, "--final-seeds", 0)  # the warm starts and what follows
    assert r.exit_code == 0, r.output
    # A net the search sampled, recorded as the best of all: the top finalist, so the best warm
    # start is one more candidate whatever the first trials' draws were.
    search = load("budget-1000")
    number = next(t.number for t in complete(search) if t.origin is Origin.SAMPLED)
    sampled = search.trials[number]
    attrs = {k: v for k, v in sampled.user_attrs.items() if k != "warm_start"}
    search.add_trial(
        create_trial(
            params=sampled.params,
            distributions=sampled.distributions,
            value=100.0,
            user_attrs=attrs,
            intermediate_values=sampled.intermediate_values,
        )
    )
    final = ["--final-seeds", 1, "--final-top", 1, "--final-epochs", 1, "--final-incumbent"]
    r = run(*args, "--n-trials", 1, *final)
    assert r.exit_code == 0, r.output
    search = load("budget-1000")
    starts = [t for t in complete(search) if t.origin is Origin.WARM_START]
    assert starts, [TrialRecord.of(t).origin for t in search.trials]
    best_start = min(starts, key=lambda t: (-(t.val_accuracy or 0.0), t.n_params or 0))
    top = finalists(search, 1)[0]
    assert top.val_accuracy == 100.0 and top.origin is not Origin.WARM_START
    runs = load("budget-1000-final").trials
    assert {t.user_attrs["source_trial"] for t in runs} == {top.number, best_start.number}
    chosen = json.loads((in_tmp / "studies" / "budget-1000-best.json").read_text())
    best_run = max(runs, key=lambda t: t.value)
    assert chosen["source_trial"] == best_run.user_attrs["source_trial"]


def test_final_stage_after_a_kill_finishes_the_full_seeds(spawn, tmp_path, data_dir):
    """kill -9 during the first final retraining, then the same command again: the chosen net
    has every seed, and no (candidate, seed) is trained twice."""
    args = [
        "optimize",
        "--budget",
        3000,
        "--n-trials",
        2,
        "--seed",
        11,
        "--study-name",
        "kf",
        "--final-seeds",
        2,
        "--final-epochs",
        1,
        "--heartbeat",
        1,
        "--data-dir",
        data_dir,
        "--train-subset",
        500,
        "--val-size",
        500,
        "--device",
        "cpu",
    ]
    url = f"sqlite:///{tmp_path}/studies/mnist-search.db"
    first = spawn(*args, cwd=tmp_path)
    killed = False
    for _ in range(2400):
        if first.poll() is not None:
            break
        try:
            final = optuna.load_study(study_name="kf-final", storage=url)
            if final.get_trials(states=(TrialState.RUNNING,)):
                first.send_signal(signal.SIGKILL)
                killed = True
                break
        except (KeyError, Exception):
            pass
        time.sleep(0.05)
    first.wait()
    assert killed, "the final stage was not caught running"
    time.sleep(3.5)  # past the grace period of 3 heartbeats
    again = spawn(*args, cwd=tmp_path)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    chosen = json.loads((tmp_path / "studies" / "kf-best.json").read_text())
    assert chosen["result"]["seeds"] == [0, 1]
    assert "over 2 seeds" in out
    done = [
        (t.user_attrs["source_trial"], t.user_attrs["seed"])
        for t in optuna.load_study(study_name="kf-final", storage=url).trials
        if t.state == TrialState.COMPLETE
    ]
    assert len(done) == len(set(done))
    assert not optuna.load_study(study_name="kf-final", storage=url).get_trials(
        states=(TrialState.RUNNING, TrialState.WAITING)
    )
