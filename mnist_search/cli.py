"""The command line: optimize, train, experiments. Errors become one line and exit status 2 here,
at the edge; the modules below raise ordinary exceptions."""

from __future__ import annotations

import json
import logging
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Find the best small CNN for MNIST under a hard parameter budget.")
log = logging.getLogger("mnist_search")

DataDir = Annotated[Optional[Path], typer.Option(
    help="Folder with the four MNIST IDX files (.gz or raw); default: $MNIST_SEARCH_DATA, the "
         "cache, then download.", show_default=False)]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
Epochs = Annotated[int, typer.Option(help="Training epochs per candidate.")]
Parallel = Annotated[int, typer.Option(
    help="Train K same-shape candidates together in one fused step (pays on a GPU).")]
Amp = Annotated[Optional[bool], typer.Option(
    "--amp/--no-amp", help="bf16 autocast; default on for CUDA.", show_default=False)]
ChannelsLast = Annotated[Optional[bool], typer.Option(
    "--channels-last/--no-channels-last", help="channels_last memory format; default on for CUDA.",
    show_default=False)]
Compile = Annotated[bool, typer.Option(
    "--compile/--no-compile", help="torch.compile each model (pays only for long trials).")]
Storage = Annotated[Optional[str], typer.Option(
    help="Optuna storage URL; default sqlite:///studies/<study-name>.db.", show_default=False)]
TrainSubset = Annotated[Optional[int], typer.Option(
    help="Train on only the first N training images (quick runs); default: all 55,000.",
    show_default=False)]


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


class _Stderr(logging.Handler):
    """Writes to whatever sys.stderr is at the time (it may be swapped, as in tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def _setup_logging(prefix: str = "") -> None:
    handlers = [h for h in log.handlers if isinstance(h, _Stderr)]
    if not handlers:
        handlers = [_Stderr()]
        log.addHandler(handlers[0])
    handlers[0].setFormatter(logging.Formatter(prefix + "%(message)s"))
    log.setLevel(logging.INFO)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _device(name: str):
    from .device import DeviceError, resolve_device

    try:
        return resolve_device(name)
    except DeviceError as e:
        fail(str(e))


def _check_common(epochs: int, train_subset: int | None, val_size: int) -> None:
    if epochs < 1:
        fail(f"--epochs {epochs}: must be at least 1")
    if not 0 < val_size < 60000:
        fail(f"--val-size {val_size}: must be between 1 and 59,999")
    if train_subset is not None and not 0 < train_subset <= 60000 - val_size:
        fail(f"--train-subset {train_subset}: must be between 1 and {60000 - val_size:,} "
             f"(60,000 training images minus the {val_size:,} held out for validation)")


def _load(data_dir: Path | None, device, val_size: int, train_subset: int | None):
    from .data import DataError, load_mnist, make_splits

    try:
        data = load_mnist(data_dir)
    except DataError as e:
        fail(str(e))
    return make_splits(data, device, val_size=val_size, train_subset=train_subset)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}%"


# --- optimize ------------------------------------------------------------------------------------

@app.command()
def optimize(
    budget: Annotated[int, typer.Option(help="Hard cap on trainable parameters.")] = 25000,
    n_trials: Annotated[Optional[int], typer.Option(
        help="Stop after this many trials (this run).", show_default=False)] = None,
    timeout: Annotated[Optional[float], typer.Option(
        help="Stop after this many seconds; default 900 when --n-trials is not given. With "
             "--final-seeds it covers both stages.",
        show_default=False)] = None,
    epochs: Epochs = 1,
    study_name: Annotated[Optional[str], typer.Option(
        help="Study name; default budget-<BUDGET>. The same name resumes the study.",
        show_default=False)] = None,
    storage: Storage = None,
    seed: Annotated[Optional[int], typer.Option(
        help="Seed for sampler and training; fixes the trials of a one-process CPU study.",
        show_default=False)] = None,
    device: Device = "auto",
    data_dir: DataDir = None,
    train_subset: TrainSubset = None,
    val_size: Annotated[int, typer.Option(help="Training images held out for validation.")] = 5000,
    pruner: Annotated[str, typer.Option(help="median, hyperband or none.")] = "median",
    artifacts: Annotated[Optional[Path], typer.Option(
        help="Folder for trained weights; default studies/artifacts.", show_default=False)] = None,
    warm_start: Annotated[Optional[str], typer.Option(
        help="'documented': queue the write-up's architectures that fit the budget first.",
        show_default=False)] = None,
    top: Annotated[int, typer.Option(help="Rows in the final table.")] = 10,
    workers: Annotated[int, typer.Option(
        help="Worker processes on this machine, all on the same study (GPUs round-robin).")] = 1,
    heartbeat: Annotated[int, typer.Option(
        help="Seconds between a running trial's heartbeats; a trial silent for 3 beats is "
             "failed and retried.")] = 10,
    parallel: Parallel = 1,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    compile_model: Compile = False,
    space: Annotated[str, typer.Option(
        help="Search space: modern (BN, separable, residual, GAP) or plain (the write-up's).")
    ] = "modern",
    final_seeds: Annotated[int, typer.Option(
        help="After the search, retrain the best candidates from scratch with this many seeds "
             "(0: no final stage).")] = 0,
    final_epochs: Annotated[Optional[int], typer.Option(
        help="Epochs of each final retraining; default: --epochs.", show_default=False)] = None,
    final_top: Annotated[int, typer.Option(
        help="How many of the best candidates (by validation) the final stage retrains.")] = 3,
    best_spec: Annotated[Optional[Path], typer.Option(
        help="Where the final stage writes the chosen net for 'train --spec'; default "
             "studies/<study-name>-best.json.", show_default=False)] = None,
    rank: Annotated[Optional[int], typer.Option(hidden=True)] = None,
) -> None:
    """Search architectures and training settings under --budget parameters.

    Start it any number of times, on one machine or many, with the same --storage and
    --study-name: all processes work on the same study. With --final-seeds, the best
    candidates are then retrained at --final-epochs and the chosen one reported on the test set."""
    from .space import SPACES, get_space
    from .spec import describe
    from .final import final_study_name
    from .study import (PRUNERS, Protocol, StudyError, check_reachable, check_storage_url,
                        default_storage, make_objective, open_storage, open_study)

    _setup_logging()
    if space not in SPACES:
        fail(f"--space {space!r}; valid: {', '.join(SPACES)}")
    sp = get_space(space)
    if budget <= 0:
        fail(f"--budget {budget}: must be a positive number of parameters")
    if budget < sp.smallest_params():
        fail(f"--budget {budget:,} is below the smallest net in the {space} search space "
             f"({sp.smallest_params():,} parameters: {describe(sp.smallest_net())})")
    if final_seeds < 0:
        fail(f"--final-seeds {final_seeds}: must be 0 (no final stage) or more")
    if final_epochs is not None and final_epochs < 1:
        fail(f"--final-epochs {final_epochs}: must be at least 1")
    if final_top < 1:
        fail(f"--final-top {final_top}: must be at least 1")
    _check_common(epochs, train_subset, val_size)
    if n_trials is not None and n_trials < 1:
        fail(f"--n-trials {n_trials}: must be at least 1")
    if timeout is not None and timeout <= 0:
        fail(f"--timeout {timeout}: must be a positive number of seconds")
    if pruner not in PRUNERS:
        fail(f"--pruner {pruner!r}; valid: {', '.join(PRUNERS)}")
    if warm_start not in (None, "documented"):
        fail(f"--warm-start {warm_start!r}; valid: documented")
    if workers < 1:
        fail(f"--workers {workers}: must be at least 1")
    if heartbeat < 1:
        fail(f"--heartbeat {heartbeat}: must be at least 1 second")
    if parallel < 1:
        fail(f"--parallel {parallel}: must be at least 1")
    if timeout is None and n_trials is None:
        timeout = 900.0
    dev = _device(device)
    study_name = study_name or f"budget-{budget}"
    default_url = storage is None
    url = storage or default_storage(study_name)
    try:
        if not default_url:  # the default folder is made below, once the input is known good
            check_storage_url(url)
            check_reachable(url)
    except StudyError as e:
        fail(str(e))
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    protocol = Protocol(epochs=epochs, train_subset=train_subset, val_size=val_size)
    from .workers import worker_device, worker_seed

    if rank is not None:
        dev = worker_device(device, dev, rank)
        _setup_logging(f"[worker {rank}] ")
    splits = _load(data_dir, dev, val_size, train_subset)  # verified before anything is written
    if default_url:
        Path("studies").mkdir(exist_ok=True)
    try:
        # The study is created here, once, before any worker starts: workers that each created
        # a fresh SQLite study at the same moment would collide.
        # Heartbeats come from study.optimize; --parallel runs ask-and-tell, which has none.
        beat = heartbeat if parallel == 1 else None
        study = open_study(open_storage(url, heartbeat=beat), study_name, budget, protocol,
                           seed=seed if rank is None else worker_seed(seed, rank), pruner=pruner,
                           space=space)
        final_study = None
        if final_seeds and rank is None:
            # Opened now so that a mismatch with an earlier final stage stops the run before the
            # search, not after it.
            final_protocol = Protocol(epochs=final_epochs or epochs, train_subset=train_subset,
                                      val_size=val_size)
            final_study = open_study(open_storage(url, heartbeat=heartbeat),
                                     final_study_name(study_name), budget, final_protocol,
                                     seed=seed, pruner="none", space=space)
    except StudyError as e:
        fail(str(e))
    if warm_start and rank is None:
        from .replay import warm_start as queue_documented

        for line in queue_documented(study, budget, space):
            log.info(line)
    final_args = dict(url=url, budget=budget, space=space, seeds=final_seeds, top=final_top,
                      epochs=final_epochs or epochs, data_dir=data_dir, device=dev,
                      val_size=val_size, train_subset=train_subset, artifacts=artifacts,
                      best_spec=best_spec,
                      speed=(amp, channels_last, compile_model))
    if workers > 1:
        from .workers import run_workers

        del splits
        child = ["optimize", "--budget", budget, "--epochs", epochs, "--study-name", study_name,
                 "--storage", url, "--seed", seed, "--device", device, "--val-size", val_size,
                 "--pruner", pruner, "--heartbeat", heartbeat, "--parallel", parallel,
                 "--space", space,
                 "--compile" if compile_model else "--no-compile"]
        if amp is not None:
            child.append("--amp" if amp else "--no-amp")
        if channels_last is not None:
            child.append("--channels-last" if channels_last else "--no-channels-last")
        for flag, value in (("--n-trials", n_trials), ("--timeout", timeout),
                            ("--data-dir", data_dir), ("--train-subset", train_subset),
                            ("--artifacts", artifacts)):
            if value is not None:
                child += [flag, value]
        log.info("study %r in %s: starting %d workers", study_name, url, workers)
        codes = run_workers(child, workers, cpu=dev.type == "cpu")
        _print_summary(study, url, top)
        if any(codes):
            log.info("worker exit statuses: %s", codes)
            raise typer.Exit(1)
        if final_study is not None:
            _final_stage(study, final_study, **final_args)
        return

    limits = " and ".join(x for x in (f"{n_trials} trials" if n_trials else "",
                                      f"{timeout:.0f} s" if timeout else "") if x)
    log.info("study %r in %s: budget %s parameters, %d epoch(s) on %s train / %s val images, "
             "device %s, seed %d; stopping after %s", study_name, url, f"{budget:,}", epochs,
             f"{len(splits.train):,}", f"{len(splits.val):,}", dev, seed, limits)
    deadline = time.time() + timeout if timeout else None
    from .artifacts import artifact_store

    from .train import Speed

    objective = make_objective(budget, protocol, splits, base_seed=seed, deadline=deadline,
                               progress=log.info, artifact_store=artifact_store(artifacts),
                               speed=Speed(amp, channels_last, None, compile_model), space=space)
    callbacks: list[Any] = [_Progress(study)]
    reserve = None
    if final_study is not None and deadline is not None:
        from .final import LeaveTimeForFinal

        reserve = LeaveTimeForFinal(deadline, final_top, final_seeds, epochs,
                                    final_epochs or epochs)
        callbacks.append(reserve)
    try:
        if parallel > 1:
            from .parallel import run_parallel

            run_parallel(study, objective, parallel, n_trials=n_trials, timeout=timeout,
                         callbacks=callbacks,
                         stop=lambda: reserve is not None and reserve.stopped_with is not None)
        else:
            study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks,
                           catch=())
    except KeyboardInterrupt:
        log.info("interrupted: the running trial is marked failed; run again to resume")
        final_study = None
    if reserve is not None and reserve.stopped_with is not None:
        log.info("search stopped with %.0f s left: about what the final stage needs (estimated "
                 "from the top candidates' trial times)", reserve.stopped_with)
    if rank is None:
        _print_summary(study, url, top)
    if final_study is not None:
        # The final stage trains on the same split as the search: no need to load it again.
        _final_stage(study, final_study, splits=splits, **final_args)


def _final_stage(study, final, *, url: str, budget: int, space: str, seeds: int, top: int,
                 epochs: int, data_dir, device, val_size: int, train_subset: int | None,
                 artifacts, best_spec, speed, splits=None) -> None:
    """Retrain the search's top candidates with several seeds; choose on validation; report."""
    from .artifacts import artifact_store
    from .final import enqueue_final, summarize_final, write_spec_file
    from .study import Protocol, make_objective, top_trials
    from .train import Speed

    sources = [t for t in top_trials(study, top) if "fixed_spec" not in t.user_attrs]
    if not sources:
        log.info("final stage skipped: the search has no complete searched trial")
        return
    todo = enqueue_final(final, sources, seeds)
    log.info("final stage: %d candidate(s) × %d seed(s), %d epoch(s) each; %d run(s) to train "
             "(study %r)", len(sources), seeds, epochs, todo, final.study_name)
    if todo:
        if splits is None:
            splits = _load(data_dir, device, val_size, train_subset)
        amp, channels_last, compile_model = speed
        protocol = Protocol(epochs=epochs, train_subset=train_subset, val_size=val_size)
        objective = make_objective(budget, protocol, splits,
                                   progress=log.info, artifact_store=artifact_store(artifacts),
                                   speed=Speed(amp, channels_last, None, compile_model),
                                   space=space)
        try:
            final.optimize(objective, n_trials=todo, callbacks=[_Progress(final)], catch=())
        except KeyboardInterrupt:
            log.info("interrupted: finished retrainings are kept (shown below); run again to "
                     "train the rest")
    rows = summarize_final(final, sources, seeds)
    typer.echo(f"\nfinal: {len(rows)} candidate(s) retrained from scratch, {epochs} epoch(s), "
               f"seeds 0-{seeds - 1}; chosen on mean validation accuracy")
    typer.echo(f"{'trial':>5}  {'params':>7}  {'val mean ± std':>15}  {'test mean ± std':>15}  "
               "architecture")
    for c in rows:
        (vm, vs), (tm, ts) = c.val_mean_std, c.test_mean_std
        typer.echo(f"{c.source_trial:>5}  {c.n_params:>7,}  {vm:>8.2f} ± {vs:4.2f}  "
                   f"{tm:>8.2f} ± {ts:4.2f}  {c.architecture}  ({len(c.seeds)} seeds)")
    if not rows:
        return
    best = rows[0]
    tm, ts = best.test_mean_std
    path = best_spec or Path("studies") / f"{study.study_name}-best.json"
    write_spec_file(path, best, epochs, {"budget": budget, "space": space,
                                         "study": study.study_name, "storage": url})
    typer.echo(f"\nchosen: trial {best.source_trial}, {best.n_params:,} parameters, test "
               f"{tm:.2f} ± {ts:.2f}% over {len(best.seeds)} seeds ({epochs} epochs)")
    typer.echo(f"written to {path}; reproduce with:  mnist-search train --spec {path} "
               f"--seeds {seeds}")


class _Progress:
    """One line per finished trial: what it was, and how the study stands."""

    def __init__(self, study) -> None:
        self.start = time.time()

    def __call__(self, study, trial) -> None:
        from .study import tally, top_trials

        t = tally(study.get_trials(deepcopy=False))
        best = top_trials(study, 1)
        a = trial.user_attrs
        what = (f"val {trial.value:.2f}%" if trial.value is not None
                else a.get("pruned_reason", trial.state.name.lower()))
        standing = (f"best {best[0].value:.2f}% @ {best[0].user_attrs.get('n_params', 0):,}"
                    if best else "no complete trial yet")
        name = f"trial {trial.number}"
        if "source_trial" in a:  # a final-stage run
            name = f"final run {trial.number} (trial {a['source_trial']}, seed {a.get('seed')})"
        log.info("%s %s: %s | %s params %s | %.0fs || done %d, pruned %d | %s | %.0fs",
                 name, trial.state.name, what, f"{a.get('n_params', 0):,}",
                 a.get("architecture", "?"), a.get("seconds", 0), t.complete, t.pruned,
                 standing, time.time() - self.start)


def _print_summary(study, url: str, top: int) -> None:
    from .study import tally, top_trials, trial_row

    t = tally(study.get_trials(deepcopy=False))
    typer.echo(f"\nstudy {study.study_name}: {t.complete} complete, {t.pruned} pruned "
               f"({t.over_budget} over budget), {t.failed} failed")
    rows = [trial_row(tr) for tr in top_trials(study, top)]
    if rows:
        typer.echo(f"{'trial':>5}  {'params':>7}  {'val acc':>7}  {'test acc':>8}  "
                   f"{'seconds':>7}  architecture")
        for r in rows:
            typer.echo(f"{r['trial']:>5}  {r['n_params']:>7,}  {_pct(r['val_accuracy']):>7}  "
                       f"{_pct(r['test_accuracy']):>8}  {r['seconds'] or 0:>7.1f}  "
                       f"{r['architecture']}")
        typer.echo("(selected on validation accuracy; test accuracy is shown, never used)")
    typer.echo(f"\nopen it with:  optuna-dashboard {url}")
    typer.echo(f"   or (with trained weights attached):  mnist-search dashboard --storage {url} "
               f"--study-name {study.study_name}")


# --- train ---------------------------------------------------------------------------------------

@app.command("train")
def train_cmd(
    spec: Annotated[Optional[Path], typer.Option(
        help="JSON file: a spec, or {\"spec\": ..., \"training\": ...}.", show_default=False)] = None,
    experiment: Annotated[Optional[int], typer.Option(
        help="A documented experiment (1-6), under the documented protocol.",
        show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(
        help="Training epochs; default: the spec file's 'epochs', else 1.",
        show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and batch order.")] = 0,
    seeds: Annotated[int, typer.Option(
        help="Train this many times, seeds --seed, --seed+1, ...; report mean ± std.")] = 1,
    device: Device = "auto",
    data_dir: DataDir = None,
    train_subset: TrainSubset = None,
    val_size: Annotated[int, typer.Option(help="Training images held out for validation.")] = 5000,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    compile_model: Compile = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train one spec (--spec) or one documented experiment (--experiment) and report it.

    A spec file written by 'optimize --final-seeds' holds the net, its training settings and
    epochs, so 'train --spec FILE --seeds 3' reproduces its result."""
    from .experiments import DOCUMENTED_PROTOCOL, get_experiment
    from .spec import ArchSpec, SpecError, count_params, describe
    from .train import Diverged, TrainConfig, train

    _setup_logging()
    if (spec is None) == (experiment is None):
        fail("give exactly one of --spec FILE or --experiment N")
    if seeds < 1:
        fail(f"--seeds {seeds}: must be at least 1")
    file_epochs = None
    training: dict[str, Any] = {"batch_size": 128, **DOCUMENTED_PROTOCOL}
    if experiment is not None:
        try:
            exp = get_experiment(experiment)
        except KeyError as e:
            fail(e.args[0])
        arch, training["batch_size"] = exp.spec, exp.batch_size
    else:
        try:
            raw = json.loads(spec.read_text())
        except OSError as e:
            fail(f"--spec {spec}: cannot read it ({e.strerror})")
        except json.JSONDecodeError as e:
            fail(f"--spec {spec}: not JSON ({e.msg} at line {e.lineno})")
        if isinstance(raw, dict) and "spec" in raw:
            training.update(raw.get("training") or {})
            file_epochs = raw.get("epochs")
            raw = raw["spec"]
        try:
            arch = ArchSpec.from_dict(raw)
        except SpecError as e:
            fail(f"--spec {spec}: {e}")
    if epochs is None:
        epochs = file_epochs if isinstance(file_epochs, int) and file_epochs >= 1 else 1
    _check_common(epochs, train_subset, val_size)
    try:
        cfgs = [TrainConfig(**{**training, "epochs": epochs, "seed": seed + k})
                for k in range(seeds)]
    except (TypeError, ValueError) as e:
        fail(f"--spec {spec}: bad training settings: {e}")
    dev = _device(device)
    splits = _load(data_dir, dev, val_size, train_subset)
    log.info("training %s (%s parameters) for %d epoch(s) on %s%s", describe(arch),
             f"{count_params(arch):,}", epochs, dev,
             f", seeds {seed}-{seed + seeds - 1}" if seeds > 1 else "")
    from .train import Speed

    speed = Speed(amp, channels_last, None, compile_model)
    runs = []
    for cfg in cfgs:
        started = time.time()

        def progress(step: int, val: float, cfg=cfg, started=started) -> None:
            # One line per epoch: a 40-epoch run on a CPU takes many minutes.
            if cfg.epochs > 1:
                log.info("seed %d, epoch %d/%d: val %.2f%% (%.0f s)", cfg.seed, step + 1,
                         cfg.epochs, val, time.time() - started)

        try:
            r = train(arch, cfg, splits, speed=speed, on_report=progress)
        except Diverged as e:
            fail(f"training diverged (seed {cfg.seed}): {e}; try a lower learning rate")
        runs.append({"seed": cfg.seed, "train_accuracy": r.train_accuracy,
                     "val_accuracy": r.val_accuracy, "test_accuracy": r.test_accuracy,
                     "seconds": round(r.seconds, 3),
                     "images_per_second": round(r.images_per_second, 1)})
        if seeds > 1:
            log.info("seed %d: val %.2f%%, test %.2f%%, %.0f s", cfg.seed, r.val_accuracy,
                     r.test_accuracy, r.seconds)
    out: dict[str, Any] = {"n_params": count_params(arch), "architecture": describe(arch),
                           "epochs": epochs, "batch_size": cfgs[0].batch_size,
                           "device": str(dev)}
    if seeds == 1:
        out.update({k: v for k, v in runs[0].items() if k != "seed"})
    else:
        import statistics

        for key in ("val_accuracy", "test_accuracy"):
            xs = [r[key] for r in runs]
            out[key.replace("accuracy", "mean")] = statistics.fmean(xs)
            out[key.replace("accuracy", "std")] = statistics.stdev(xs)
        out["seconds"] = round(sum(r["seconds"] for r in runs), 3)
        out["runs"] = runs
    out["speed"] = speed.resolve(dev, epochs).to_dict()
    if as_json:
        typer.echo(json.dumps(out))
        return
    for key, value in out.items():
        if key == "runs":
            continue
        shown = _pct(value) if key.endswith(("accuracy", "mean", "std")) else (
            f"{value:,}" if isinstance(value, int) else value)
        typer.echo(f"{key:>18}: {shown}")


# --- replay --------------------------------------------------------------------------------------

@app.command()
def replay(
    experiments_: Annotated[str, typer.Option(
        "--experiments", help="Comma-separated experiment ids.")] = "1,2,3,4,5,6",
    seeds: Annotated[int, typer.Option(help="Runs per experiment (seeds 0..K-1).")] = 3,
    epochs: Epochs = 1,
    device: Device = "auto",
    study_name: Annotated[str, typer.Option(help="Study to hold the replayed trials.")] =
        "documented-experiments",
    storage: Storage = None,
    data_dir: DataDir = None,
    train_subset: TrainSubset = None,
    val_size: Annotated[int, typer.Option(help="Training images held out for validation.")] = 5000,
    artifacts: Annotated[Optional[Path], typer.Option(
        help="Folder for trained weights; default studies/artifacts.", show_default=False)] = None,
    parallel: Parallel = 1,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Re-run the write-up's experiments as fixed trials; show documented vs measured."""
    from .experiments import DOCUMENTED_PROTOCOL, PROTOCOL_NAME, documented_experiments
    from .replay import enqueue_replay, findings, summarize, to_json
    from .study import (Protocol, StudyError, check_reachable, check_storage_url,
                        default_storage, make_objective, open_storage, open_study)

    _setup_logging()
    valid = [e.id for e in documented_experiments()]
    try:
        ids = sorted({int(x) for x in experiments_.split(",") if x.strip()})
    except ValueError:
        ids = []
    bad = [i for i in ids if i not in valid]
    if not ids or bad:
        fail(f"--experiments {experiments_!r}: give ids from "
             f"{', '.join(map(str, valid))}, comma-separated")
    if seeds < 1:
        fail(f"--seeds {seeds}: must be at least 1")
    if parallel < 1:
        fail(f"--parallel {parallel}: must be at least 1")
    _check_common(epochs, train_subset, val_size)
    dev = _device(device)
    url = storage or default_storage(study_name)
    try:
        if storage is not None:
            check_storage_url(url)
            check_reachable(url)
    except StudyError as e:
        fail(str(e))
    protocol = Protocol(epochs=epochs, train_subset=train_subset, val_size=val_size)
    splits = _load(data_dir, dev, val_size, train_subset)
    if storage is None:
        Path("studies").mkdir(exist_ok=True)
    try:
        study = open_study(open_storage(url), study_name, None, protocol, pruner="none",
                           space="plain")
    except StudyError as e:
        fail(str(e))
    queued, done = enqueue_replay(study, ids, seeds)
    log.info("replay in %s: %d run(s) to train, %d already done; protocol %s: %s, %d epoch(s)",
             url, queued, done, PROTOCOL_NAME, DOCUMENTED_PROTOCOL, epochs)
    if queued:
        from .artifacts import artifact_store

        from .parallel import run_parallel
        from .train import Speed

        objective = make_objective(None, protocol, splits, progress=log.info,
                                   artifact_store=artifact_store(artifacts),
                                   speed=Speed(amp, channels_last), space="plain")
        progress = _Progress(study)
        try:
            if parallel > 1:
                run_parallel(study, objective, parallel, n_trials=queued, callbacks=[progress])
            else:
                study.optimize(objective, n_trials=queued, callbacks=[progress])
        except KeyboardInterrupt:
            log.info("interrupted: finished runs are kept; run again to train the rest")
    rows = summarize(study, ids)
    found = findings(rows)
    if as_json:
        typer.echo(json.dumps(to_json(rows, found, {"name": PROTOCOL_NAME, "epochs": epochs,
                                                    "batch_size": "per experiment",
                                                    **DOCUMENTED_PROTOCOL}), indent=2))
        return
    _print_replay(rows, found)


def _print_replay(rows, found) -> None:
    def both(doc, measured) -> str:
        return f"{_pct(doc):>7} | {str(measured) + '%' if measured else '-':<15}"

    typer.echo(f"\n{'exp':>3}  {'params: documented → true':<30}  {'train acc: doc | measured':<25}"
               f"  {'test acc: doc | measured':<25}  {'s/epoch':>7}  {'efficiency: doc → true':>22}")
    for r in rows:
        params = f"{r['documented_params_text']} → {r['true_params']:,}"
        if r["count_is_wrong"]:
            params += " (!)"
        eff = (f"{r['documented_efficiency']:.2f} → {r['efficiency']:.2f}"
               if r["documented_efficiency"] else "-")
        spe = r["seconds_per_epoch"]
        typer.echo(f"{r['experiment']:>3}  {params:<30}  "
                   f"{both(r['documented_train_accuracy'], r['train_accuracy'])}  "
                   f"{both(r['documented_test_accuracy'], r['test_accuracy'])}  "
                   f"{spe.mean if spe else 0:>7.1f}  {eff:>22}")
    n = {len(r["seeds"]) for r in rows}
    typer.echo(f"(measured: mean ± std over {'/'.join(map(str, sorted(n)))} seed(s); efficiency = "
               "test accuracy / (params/1000), 'true' with the measured accuracy and true count)")
    for r in rows:
        if r["count_is_wrong"]:
            typer.echo(f"(!) Exp{r['experiment']}: {r['note']}")
    typer.echo("\nfindings of the write-up:")
    for f in found:
        verdict = {True: "holds", False: "does not hold", None: "not checked"}[f["holds"]]
        typer.echo(f"  ({f['id']}) {f['claim']}: {verdict.upper()} — {f['detail']}")


# --- experiments ---------------------------------------------------------------------------------

@app.command()
def experiments(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the six documented experiments with their documented and true parameter counts."""
    from .experiments import documented_experiments

    rows = [e.to_dict() for e in documented_experiments()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'id':>2}  {'batch':>5}  {'doc params':>16}  {'true params':>11}  "
               f"{'doc train':>9}  {'doc test':>8}  architecture")
    for r in rows:
        mark = "  (!)" if r["count_is_wrong"] else ""
        typer.echo(f"{r['id']:>2}  {r['batch_size']:>5}  {r['documented_params_text']:>16}  "
                   f"{r['true_params']:>11,}  {_pct(r['documented_train_accuracy']):>9}  "
                   f"{_pct(r['documented_test_accuracy']):>8}  {r['architecture']}{mark}")
    for r in rows:
        if r["count_is_wrong"]:
            typer.echo(f"(!) Exp{r['id']}: {r['note']}")


# --- looking at results: report, export, dashboard -----------------------------------------------

StudyName = Annotated[str, typer.Option(help="Study to read.")]
Artifacts = Annotated[Optional[Path], typer.Option(
    help="Folder of trained weights; default studies/artifacts.", show_default=False)]


def _missing_sqlite_file(url: str) -> Path | None:
    """The database file a sqlite:/// URL names, when it does not exist (reading must not
    create it)."""
    if not url.startswith("sqlite:///"):
        return None
    db = Path(url[len("sqlite:///"):])
    return None if db.is_file() else db


def _require_database(url: str) -> None:
    db = _missing_sqlite_file(url)
    if db is not None:
        fail(f"no study database at {db}; run optimize first or pass --storage")


def _existing_study(study_name: str, storage: str | None):
    """Load a study that must exist, without creating a database file for a wrong path."""
    import optuna

    from .study import StudyError, check_storage_url, default_storage, open_storage

    url = storage or default_storage(study_name)
    try:
        check_storage_url(url)
        _require_database(url)
        st = open_storage(url)
        return optuna.load_study(study_name=study_name, storage=st), url
    except StudyError as e:
        fail(str(e))
    except KeyError:
        fail(f"no study named {study_name!r} in {url}")


@app.command()
def report(
    study_name: StudyName = "budget-25000",
    storage: Storage = None,
    replay_study: Annotated[str, typer.Option(
        help="Study of replayed experiments to place on the plot, if it exists.")] =
        "documented-experiments",
    replay_storage: Annotated[Optional[str], typer.Option(
        help="Its storage URL; default sqlite:///studies/<replay-study>.db.",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
) -> None:
    """Write one self-contained HTML report of a study (plots need no network)."""
    import optuna

    from .replay import summarize
    from .report import write_report
    from .study import default_storage, open_storage

    _setup_logging()
    study, _ = _existing_study(study_name, storage)
    rows = None
    rurl = replay_storage or default_storage(replay_study)
    if replay_storage or _missing_sqlite_file(rurl) is None:
        try:
            rows = summarize(optuna.load_study(study_name=replay_study,
                                               storage=open_storage(rurl)))
        except KeyError:
            log.info("no replay study %r in %s: documented values only", replay_study, rurl)
    data = write_report(study, out, rows)
    typer.echo(f"wrote {out} ({len(data['points'])} complete trials, "
               f"{len(data['front'])} on the Pareto front, "
               f"{sum(1 for d in data['documented'] if d['measured_test'] is not None)} "
               "replayed experiments)")


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Folder to write the model files into.")],
    trial: Annotated[str, typer.Option(help="Trial number, or 'best'.")] = "best",
    study_name: StudyName = "budget-25000",
    storage: Storage = None,
    artifacts: Artifacts = None,
    verify: Annotated[bool, typer.Option(
        help="Evaluate the exported model on the test set and compare with the trial.")] = True,
    device: Device = "cpu",
    data_dir: DataDir = None,
) -> None:
    """Export a trained trial: state_dict, TorchScript, spec JSON and a per-layer summary."""
    from .artifacts import ArtifactError, artifact_store, pick_trial
    from .export import export_trial, verify_export

    _setup_logging()
    study, _ = _existing_study(study_name, storage)
    folder = artifacts or Path("studies") / "artifacts"
    if not folder.is_dir():
        fail(f"artifact folder {folder} does not exist; pass --artifacts")
    try:
        chosen = pick_trial(study, trial)
        files = export_trial(study, chosen, artifact_store(folder), out)
    except ArtifactError as e:
        fail(str(e))
    for f in files:
        typer.echo(f"wrote {f}")
    if verify:
        dev = _device(device)
        protocol = study.user_attrs.get("protocol") or {}
        splits = _load(data_dir, dev, protocol.get("val_size", 5000), 1)
        got = verify_export(out, splits.test)
        recorded = chosen.user_attrs.get("test_accuracy")
        same = recorded is not None and abs(got - recorded) < 1e-9
        typer.echo(f"exported model: test accuracy {got:.2f}% (trial {chosen.number} recorded "
                   f"{_pct(recorded)}){'' if same else ' -- MISMATCH'}")
        if not same:
            raise typer.Exit(1)


@app.command()
def dashboard(
    study_name: Annotated[Optional[str], typer.Option(
        help="Study whose database to open; default budget-25000.", show_default=False)] = None,
    storage: Storage = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(
        help="Address to bind; anything but 127.0.0.1 exposes the dashboard to the network.")]
        = "127.0.0.1",
    artifacts: Artifacts = None,
) -> None:
    """Start optuna-dashboard on the study's storage, with its trained weights attached."""
    from optuna_dashboard import run_server

    from .artifacts import artifact_store
    from .study import StudyError, default_storage, open_storage

    _setup_logging()
    if not 0 < port < 65536:
        fail(f"--port {port}: must be between 1 and 65535")
    url = storage or default_storage(study_name or "budget-25000")
    _require_database(url)
    try:
        st = open_storage(url)
    except StudyError as e:
        fail(str(e))
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("warning: binding %s makes the dashboard reachable from the network, "
                    "without authentication", host)
    log.info("optuna-dashboard for %s on http://%s:%d/ (Ctrl-C stops it)", url, host, port)
    run_server(st, host=host, port=port, artifact_store=artifact_store(artifacts))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
