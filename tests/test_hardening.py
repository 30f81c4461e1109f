"""Faults and hostile input: nothing lost, no secret shown, no traceback."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from foreground import hear_stops
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.search.storage import masked, open_storage
from mnist_search.search.study import open_study
from mnist_search.training.protocol import Protocol

runner = CliRunner()
TINY = ["--train-subset", "300", "--val-size", "300", "--device", "cpu"]


def cli(*args, cwd=None, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_search", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=hear_stops,
        **kw,
    )


def _one_line_error(r):
    """Exit 2 and one error line, the last (progress lines such as the data source may come
    before it)."""
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert [x for x in lines if x.startswith("error: ")] == lines[-1:], r.stderr
    assert "Traceback" not in r.output


# --- the final stage after a kill ------------------------------------------------------------------


def test_final_stage_after_a_kill_finishes_the_full_seeds(tmp_path, data_dir):
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
    first = cli(*args, cwd=tmp_path)
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
    again = cli(*args, cwd=tmp_path)
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


# --- secrets -----------------------------------------------------------------------------------


def test_own_process_line_is_masked(monkeypatch):
    from mnist_search import redact

    line = ["python", "-m", "mnist_search", "optimize", "--storage=postgresql://u:pw@h/db"]
    titles = []
    monkeypatch.setattr(redact, "own_command_line", lambda: line)
    monkeypatch.setattr("setproctitle.setproctitle", titles.append)
    assert redact.hide_from_process_list()
    assert titles == ["python -m mnist_search optimize --storage=postgresql://u:***@h/db"]
    line = ["python", "-m", "mnist_search", "optimize", "--storage", "sqlite:///a.db"]
    assert not redact.hide_from_process_list() and len(titles) == 1


@pytest.mark.parametrize(
    "url,secret",
    [
        ("postgresql://u:secretpw@h:5432/db", "secretpw"),
        ("postgresql+psycopg://u:se/cr:et@h/db", "se/cr:et"),
        ("postgresql://u:se cret@h/db", "se cret"),
        ("postgresql://u@h/db?sslmode=require&password=s3cr%20t", "s3cr%20t"),
        ("postgresql://u@h/db?PASSWORD=topsecret#x", "topsecret"),
    ],
)
def test_every_form_of_url_password_is_masked(url, secret):
    for shown in (masked(url, url), masked(f"--storage={url}", url), masked(f"error: {url}", url)):
        assert secret not in shown and "***" in shown, shown
    # a message quotes the URL: the mask keeps the quotes, whichever pass makes it
    quoted = masked(f"storage {masked(url)!r} is unusable", url)
    assert secret not in quoted and quoted.endswith("' is unusable"), quoted
    # in free text without the URL to go by, the usual forms still are
    if " " not in secret:
        assert secret not in masked(f"could not open {url} now")


def test_masked():
    assert masked("postgresql://u:secretpw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert (
        masked("auth failed for secretpw", "postgresql://u:secretpw@h/db") == "auth failed for ***"
    )
    assert masked("sqlite:///studies/a.db") == "sqlite:///studies/a.db"


def test_unreachable_server_error_hides_the_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app, ["optimize", "--storage", "postgresql://u:secretpw@127.0.0.1:1/db", "--n-trials", "1"]
    )
    _one_line_error(r)
    assert "secretpw" not in r.output and "u:***@127.0.0.1" in r.stderr


def test_password_is_never_shown_stored_or_on_a_command_line(tmp_path, postgres_url, data_dir):
    url = postgres_url.replace("postgres@", "postgres:secretpw@")  # trust auth ignores it
    proc = cli(
        "optimize",
        "--budget",
        3000,
        "--n-trials",
        1,
        "--workers",
        2,
        "--final-seeds",
        1,
        "--study-name",
        "pw",
        "--storage",
        url,
        "--data-dir",
        data_dir,
        *TINY,
        cwd=tmp_path,
    )
    # The tool's own process had the password for the tenth of a second before it masks its
    # line; any other process that shows it (a worker, or a child between fork and exec, which
    # shows its parent's line) is a leak.
    seen, own = set(), []
    while proc.poll() is None:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        line = f.read()
                except OSError:
                    continue
                if int(pid) == proc.pid:
                    if line:  # a process that has just ended shows an empty line
                        own.append(line)
                elif b"secretpw" in line:
                    seen.add(pid)
        time.sleep(0.2)
    out = proc.stdout.read()
    assert proc.returncode == 0, out
    assert seen == set(), "a worker had the password on its command line"
    assert own and b"secretpw" not in own[-1] and b"postgres:***@" in own[-1], own[-1:]
    assert "secretpw" not in out and "postgres:***@" in out
    best = (tmp_path / "studies" / "pw-best.json").read_text()
    assert "secretpw" not in best and "***" in best


# --- data and concurrency ------------------------------------------------------------------------


def test_a_last_batch_of_one_image_does_not_crash_batchnorm(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(
        app,
        [
            "optimize",
            "--budget",
            3000,
            "--n-trials",
            2,
            "--seed",
            1,
            "--train-subset",
            257,
            "--val-size",
            300,
            "--device",
            "cpu",
            "--data-dir",
            str(data_dir),
        ],
    )
    assert r.exit_code == 0, r.output
    trials = optuna.load_study(
        study_name="budget-3000", storage="sqlite:///studies/mnist-search.db"
    ).trials
    trials = [t for t in trials if t.state != TrialState.WAITING]  # the design's rest waits
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(t.user_attrs["spec"]["batchnorm"] for t in trials)  # the modern space's nets


def test_processes_started_at_once_on_a_new_sqlite_file(tmp_path, data_dir):
    """Four processes on one new study at the same moment: it is created once, its warm starts
    are queued once (whoever comes first), and no two trials are the same."""
    url = f"sqlite:///{tmp_path}/race.db"
    procs = [
        cli(
            "optimize",
            "--budget",
            3000,
            "--n-trials",
            1,
            "--study-name",
            "race",
            "--storage",
            url,
            "--final-seeds",
            0,
            "--data-dir",
            data_dir,
            *TINY,
            cwd=tmp_path,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    trials = optuna.load_study(study_name="race", storage=url).trials
    warm = [t.user_attrs["warm_start"] for t in trials if "warm_start" in t.user_attrs]
    # two shipped nets and the 8-point design queued once each; 4 trials taken, the rest waits
    assert len(warm) == 2 and len(set(warm)) == 2, warm
    design = [t.user_attrs["design"] for t in trials if "design" in t.user_attrs]
    assert sorted(design) == list(range(8)), design
    assert len(trials) == 10
    taken = [t for t in trials if t.state != TrialState.WAITING]
    assert len(taken) == 4 and {t.number for t in taken} == {0, 1, 2, 3}
    assert len({json.dumps(t.params, sort_keys=True) for t in taken}) == 4
    assert sum("another process queued the found nets" in o for o in outs) == 3, outs
    assert sum("start-up design: already queued" in o for o in outs) == 3, outs


def test_a_study_made_by_another_tool_is_not_adopted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/other.db"
    optuna.create_study(study_name="theirs", storage=url, direction="maximize")
    r = runner.invoke(
        app, ["optimize", "--storage", url, "--study-name", "theirs", "--n-trials", "1"]
    )
    _one_line_error(r)
    assert "was not made by mnist-search" in r.stderr
    assert optuna.load_study(study_name="theirs", storage=url).user_attrs == {}


def test_the_same_seed_proposes_new_candidates_on_resume(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        r = runner.invoke(
            app,
            [
                "optimize",
                "--budget",
                3000,
                "--n-trials",
                3,
                "--seed",
                5,
                "--pruner",
                "none",
                "--startup",
                0,  # the sampler's own draws are what is checked
                "--data-dir",
                str(data_dir),
                *TINY,
            ],
        )
        assert r.exit_code == 0, r.output
    trials = optuna.load_study(
        study_name="budget-3000", storage="sqlite:///studies/mnist-search.db"
    ).trials
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 6


# --- outputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["optimize", "--artifacts", "afile/x"],
        ["optimize", "--final-seeds", "1", "--best-spec", "afile/best.json"],
        ["replay", "--artifacts", "afile"],
        ["report", "--out", "afile/r.html"],
    ],
)
def test_unwritable_outputs_are_refused_before_any_work(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    r = runner.invoke(app, args)
    _one_line_error(r)
    assert "afile" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_study_names_stay_inside_the_studies_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["optimize", "--study-name", "../escape"])
    _one_line_error(r)
    assert "--study-name '../escape'" in r.stderr and list(tmp_path.iterdir()) == []


def test_report_escapes_every_value(tmp_path):
    from mnist_search.outputs.report import write_report

    study = open_study(open_storage(f"sqlite:///{tmp_path}/h.db"), "h", 5000, Protocol())
    study.add_trial(
        create_trial(
            value=90.0,
            params={"x": 1},
            distributions={"x": IntDistribution(0, 2)},
            user_attrs={
                "n_params": 100,
                "batch_size": "<script>alert(1)</script>",
                "architecture": "<b>net</b>",
                "training": {"optimizer": "<i>sgd</i>"},
            },
        )
    )
    # and a final stage that retrained it, under a hostile name too
    final = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/h.db", study_name="<u>h</u>-final", direction="maximize"
    )
    final.add_trial(
        create_trial(
            value=91.0,
            user_attrs={
                "source_trial": 0,
                "seed": 0,
                "epochs": 2,
                "test_accuracy": 90.5,
                "spec": {"x": "<s>"},
                "training": {},
            },
        )
    )
    write_report(study, tmp_path / "r.html", final=final)
    text = (tmp_path / "r.html").read_text()
    tables = text[text.index("<h2>Final stage</h2>") :]
    assert tables.count('class="final-row"') == 1 and "<td>chosen</td>" in tables
    assert "<u>h</u>" not in tables and "&lt;u&gt;h&lt;/u&gt;-final" in tables
    assert "<script>alert" not in tables and "&lt;script&gt;" in tables
    assert "<b>net</b>" not in tables and "<i>sgd</i>" not in tables


def test_the_first_optimizer_imports_nothing_once_the_trainer_is_loaded():
    """torch's first optimizer imports torch._dynamo (2-3 s) unless the trainer already did: a
    stop signal landing inside that import, after the data is loaded, left torch half-imported
    and the process ended by SIGINT (or hung) instead of exiting 130 (1 run in ~40 of the test
    below)."""
    code = (
        "import sys, torch, mnist_search.training.loop\n"
        "m = torch.nn.Linear(1, 1)\n"
        "before = set(sys.modules)\n"
        "for opt in (torch.optim.SGD(m.parameters(), lr=0.1), torch.optim.AdamW(m.parameters())):\n"
        "    m(torch.ones(1)).sum().backward(); opt.step()\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_train_stops_on_a_stop_signal_as_on_ctrl_c(sig, tmp_path, data_dir):
    """A scheduler's SIGTERM or a closed terminal's SIGHUP ends `train` as Ctrl-C does: at once,
    one line, no traceback, the same exit status (not a kill by the signal)."""
    proc = cli(
        "train",
        "--experiment",
        "6",
        "--epochs",
        "20",
        "--device",
        "cpu",
        "--data-dir",
        data_dir,
        cwd=tmp_path,
    )
    try:
        seen = ""
        while "MNIST from" not in seen:  # the data is loaded: training starts now
            line = proc.stdout.readline()
            assert line, seen
            seen += line
        time.sleep(2)
        sent = time.time()
        proc.send_signal(getattr(signal, sig))
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()  # a failed check must not leave 20 epochs training beside the other tests
    assert time.time() - sent < 20
    # 130, as for Ctrl-C (not -15 or -1: killed by the signal, nothing cleaned up).
    assert proc.returncode == 130 and "Traceback" not in out, (proc.returncode, out)


def test_a_signal_started_ignored_stays_ignored_except_sigint_in_a_worker():
    """nohup's SIGHUP and a background job's SIGINT stay ignored (a search run with nohup outlives
    its terminal); SIGTERM still stops it; a worker hears SIGINT, which its parent forwards."""
    code = (
        "import signal\n"
        "from mnist_search.stopping import StopToken, obey_the_parent, stop_on_signals, "
        "terminate_like_ctrl_c\n"
        "ign = lambda s: signal.getsignal(s) is signal.SIG_IGN\n"
        "terminate_like_ctrl_c()\n"
        "print(ign(signal.SIGHUP), ign(signal.SIGINT), ign(signal.SIGTERM))\n"
        "with stop_on_signals(StopToken()):\n"
        "    print(ign(signal.SIGHUP), ign(signal.SIGINT), ign(signal.SIGTERM))\n"
        "obey_the_parent()\n"
        "print(ign(signal.SIGHUP), ign(signal.SIGINT), ign(signal.SIGTERM))\n"
    )

    def ignore_hup_and_int():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=ignore_hup_and_int,
    )
    assert out.stdout.split("\n")[:3] == ["True True False"] * 2 + ["True False False"], out


def test_optuna_says_nothing_of_a_stopped_trial_and_all_of_a_failed_one():
    """A trial stopped by a signal: the command's one line, not Optuna's traceback. A trial that
    failed by an error keeps Optuna's lines, traceback included."""
    import logging

    from mnist_search.progress import setup_logging

    setup_logging()
    records: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("optuna").addHandler(catcher)
    try:
        study = optuna.create_study()

        def stopped(trial):
            raise KeyboardInterrupt("SIGTERM")

        def broken(trial):
            raise ValueError("a bug")

        with pytest.raises(KeyboardInterrupt):
            study.optimize(stopped, n_trials=1)
        study.optimize(broken, n_trials=1, catch=(ValueError,))
    finally:
        logging.getLogger("optuna").removeHandler(catcher)
    said = [(r.getMessage(), r.exc_info is not None) for r in records]
    assert not [m for m, _ in said if m.startswith("Trial 0 ")], said
    assert [m for m, tb in said if m.startswith("Trial 1 failed with parameters") and tb], said
    assert ("Trial 1 failed with value None.", False) in said
