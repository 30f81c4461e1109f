"""Train one net alone, without a study: a spec file (as ``optimize`` or ``export`` writes it) or
a documented experiment, with one or several seeds."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from typing import Protocol as Shape

import torch

from mnist_search.catalog.experiments import DOCUMENTED_PROTOCOL, get_experiment
from mnist_search.data.dataset import Splits
from mnist_search.device import resolve_device
from mnist_search.errors import ConfigError, UsageError, check_range, check_seed
from mnist_search.files import InputError, read_json
from mnist_search.net.spec import ArchSpec, SpecError, check_batch, count_params, describe
from mnist_search.stats import stat_of
from mnist_search.training.loop import Diverged, Speed, TrainConfig, soft_targets, train
from mnist_search.training.protocol import Protocol
from mnist_search.training.settings import RunSettings

log = logging.getLogger("mnist_search")


def _or_empty(value: Any) -> Any:
    return {} if value is None else value


class TrainedNet(Shape):
    """What a trained trial offers to retrain it (a search's ``TrialRecord`` is one): training
    knows the shape, not the search that made it."""

    spec: dict[str, Any] | None
    epochs: int | None
    seed: int | None

    def recipe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SpecFile:
    """A net and how to train it: a spec, its training settings, and (optionally) its epochs."""

    spec: ArchSpec
    training: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    seed: int | None = None  # the first seed it was trained with
    # The data it was trained and judged on: train_subset, val_size, split_seed.
    protocol: dict[str, Any] = field(default_factory=dict)
    # The net whose outputs it learns from (``training``'s ``distill``), trained first on the
    # same data with its own recipe, epochs and seed; None: labels alone.
    teacher: SpecFile | None = None

    @classmethod
    def read(cls, path: str | Path, option: str = "spec") -> SpecFile:
        """A JSON spec, bare or as {"spec": ..., "training": ..., "epochs": E, "teacher": {...}}."""
        try:
            raw = read_json(path)
        except InputError as e:
            raise ConfigError(option, str(e)) from None
        try:
            return cls.parse(raw, str(path))
        except ConfigError as e:  # named by the option that gave the file (--spec, --teacher)
            raise ConfigError(option, e.rest) from None

    @classmethod
    def parse(cls, raw: Any, path: str, nested: bool = False) -> SpecFile:
        """A spec file's contents; ``nested``: a teacher's, which may not have a teacher."""
        teacher = None
        if isinstance(raw, dict) and raw.get("teacher") is not None:
            if nested:
                raise ConfigError("spec", f"{path}: a teacher cannot have a teacher of its own")
            teacher = cls.parse(raw["teacher"], f"{path}: teacher", nested=True)
        training: dict[str, Any] = {}
        protocol: dict[str, Any] = {}
        epochs, seed = None, None
        if isinstance(raw, dict) and "spec" in raw:
            # null stands for absent; any other non-object ([] or 0 included) is refused below.
            training, epochs = _or_empty(raw.get("training")), raw.get("epochs")
            seed, protocol = raw.get("seed"), _or_empty(raw.get("protocol"))
            raw = raw["spec"]
            if not isinstance(protocol, dict):
                raise ConfigError(
                    "spec", f"{path}: 'protocol' must be an object, not {protocol!r:.40}"
                )
            try:
                check_seed("seed", seed)
                Protocol.from_dict(protocol)
            except ConfigError as e:
                raise ConfigError("spec", f"{path}: {e}") from None
            if not isinstance(training, dict):
                raise ConfigError(
                    "spec",
                    f"{path}: 'training' must be an object of training settings, not "
                    f"{training!r:.40}",
                )
            if epochs is not None and (type(epochs) is not int or epochs < 1):
                raise ConfigError(
                    "spec", f"{path}: epochs={epochs!r}: must be a whole number, at least 1"
                )
        try:
            spec = ArchSpec.from_dict(raw)
        except SpecError as e:
            raise ConfigError("spec", f"{path}: {e}") from None
        return cls(spec, training, epochs, seed, protocol, teacher)

    def taught_by(self, teacher: SpecFile, distill: float, temperature: float) -> SpecFile:
        """This net trained on ``teacher``'s outputs as well as the labels."""
        for name, value, lo, hi in (
            ("distill", distill, 0.0, 1.0),
            ("temperature", temperature, 1.0, 20.0),
        ):
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ConfigError(name, f"{value}: must be between {lo:g} and {hi:g}")
        if teacher.teacher is not None:
            raise ConfigError("teacher", "a teacher cannot have a teacher of its own")
        training = self.training | {"distill": distill, "temperature": temperature}
        return dataclasses.replace(self, training=training, teacher=teacher)

    def to_dict(self) -> dict[str, Any]:
        """The file's contents: ``parse`` reads them back to this net and recipe."""
        out: dict[str, Any] = {"spec": self.spec.to_dict(), "training": self.training}
        for key in ("epochs", "seed"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.protocol:
            out["protocol"] = self.protocol
        if self.teacher is not None:
            out["teacher"] = self.teacher.to_dict()
        return out

    @classmethod
    def of(cls, record: TrainedNet) -> SpecFile:
        """The net and recipe of a trained trial, at the trial's length and seed."""
        if record.spec is None:
            raise UsageError("the trial recorded no net to retrain")
        return cls(ArchSpec.from_dict(record.spec), record.recipe(), record.epochs, record.seed)

    def protocol_for(
        self,
        epochs: int | None = None,
        train_subset: int | None = None,
        val_size: int | None = None,
        dataset: str | None = None,
    ) -> Protocol:
        """The file's protocol (its epochs, else 1; its data split, else all 55,000 training
        images and 5,000 held out; its dataset, else MNIST) with what is given in place of its
        own."""
        given = {"train_subset": train_subset, "val_size": val_size, "dataset": dataset}
        return Protocol.from_dict(
            {
                **self.protocol,
                "epochs": epochs if epochs is not None else self.epochs or 1,
                **{k: v for k, v in given.items() if v is not None},
            }
        )

    @classmethod
    def experiment(cls, exp_id: int) -> SpecFile:
        """A documented experiment under the documented protocol."""
        try:
            exp = get_experiment(exp_id)
        except KeyError as e:
            raise UsageError(e.args[0]) from None
        return cls(exp.spec, {**DOCUMENTED_PROTOCOL, "batch_size": exp.batch_size})


@dataclass(frozen=True)
class SeedRun:
    """One seed's training of the net."""

    seed: int
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    seconds: float
    images_per_second: float


@dataclass
class RetrainOutcome:
    spec: ArchSpec
    epochs: int
    batch_size: int
    device: str
    speed: dict[str, Any]
    runs: list[SeedRun]  # one per seed
    dataset: str = "mnist"
    teacher: dict[str, Any] | None = None  # the teacher's net, length and validation accuracy

    def to_dict(self) -> dict[str, Any]:
        """One run's fields as they are; several runs as validation and test mean ± std."""
        out: dict[str, Any] = {
            "n_params": count_params(self.spec),
            "architecture": describe(self.spec),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "device": self.device,
            "dataset": self.dataset,
        }
        if self.teacher is not None:
            out["teacher"] = self.teacher
        runs = [asdict(r) for r in self.runs]
        if len(runs) == 1:
            out.update({k: v for k, v in runs[0].items() if k != "seed"})
        else:
            for key in ("val", "test"):
                s = stat_of([r[f"{key}_accuracy"] for r in runs])
                out[f"{key}_mean"], out[f"{key}_std"] = s.mean, s.std
            out["seconds"] = round(sum(r.seconds for r in self.runs), 3)
            out["runs"] = runs
        out["speed"] = self.speed
        return out


def retrain(
    net: SpecFile,
    *,
    protocol: Protocol | None = None,
    seed: int | None = None,
    seeds: int = 1,
    run: RunSettings = RunSettings(),
) -> RetrainOutcome:
    """Train ``net`` with seeds ``seed`` … ``seed + seeds - 1`` under ``protocol`` (its epochs
    and data split). What is not given comes from the file (``SpecFile.protocol_for``, its
    seed), else seed 0: a file that records them retrains to the same numbers."""
    seed = seed if seed is not None else net.seed or 0
    check_range("seeds", seeds)
    run.check()
    speed = run.speed
    check_seed("seed", seed, seeds)
    protocol = protocol or net.protocol_for()
    epochs = protocol.epochs
    cfgs = [recipe_config(net, epochs, seed + k) for k in range(seeds)]
    if cfgs[0].distill and net.teacher is None:
        raise ConfigError("spec", f"distill={cfgs[0].distill} needs a teacher (--teacher FILE)")
    if net.teacher is not None:
        if not cfgs[0].distill:
            raise ConfigError("spec", "it has a teacher but its training's distill is 0")
        try:  # its recipe checked before any data is read, and named as the teacher's
            recipe_config(net.teacher, None, None)
        except ConfigError as e:
            raise ConfigError("spec", f"teacher: {e.rest}") from None
    dev = resolve_device(run.device)
    splits = protocol.splits(protocol.load(run.data_dir), dev)
    if splits.classes != net.spec.num_classes:
        raise ConfigError(
            "spec",
            f"the net has {net.spec.num_classes} outputs but {splits.dataset} has "
            f"{splits.classes} classes",
        )
    log.info(
        "training %s (%s parameters) for %d epoch(s) on %s%s",
        describe(net.spec),
        f"{count_params(net.spec):,}",
        epochs,
        dev,
        f", seeds {seed}-{seed + seeds - 1}" if seeds > 1 else "",
    )
    targets, taught = None, None
    if net.teacher is not None:
        targets, taught = teach(net.teacher, splits, speed)
    runs: list[SeedRun] = []
    for cfg in cfgs:
        started = time.time()

        def progress(step: int, val: float, cfg=cfg, started=started) -> None:
            # One line per epoch: a 40-epoch run on a CPU takes many minutes.
            if cfg.epochs > 1:
                log.info(
                    "seed %d, epoch %d/%d: val %.2f%% (%.0f s)",
                    cfg.seed,
                    step + 1,
                    cfg.epochs,
                    val,
                    time.time() - started,
                )

        try:
            r = train(net.spec, cfg, splits, speed=speed, on_report=progress, teacher=targets)
        except Diverged as e:
            raise UsageError(
                f"training diverged (seed {cfg.seed}): {e}; try a lower learning rate"
            ) from None
        assert r.test_accuracy is not None  # train() evaluates the test split by default
        runs.append(
            SeedRun(
                seed=cfg.seed,
                train_accuracy=r.train_accuracy,
                val_accuracy=r.val_accuracy,
                test_accuracy=r.test_accuracy,
                seconds=round(r.seconds, 3),
                images_per_second=round(r.images_per_second, 1),
            )
        )
        if seeds > 1:
            log.info(
                "seed %d: val %.2f%%, test %.2f%%, %.0f s",
                cfg.seed,
                r.val_accuracy,
                r.test_accuracy,
                r.seconds,
            )
    return RetrainOutcome(
        net.spec,
        epochs,
        cfgs[0].batch_size,
        str(dev),
        speed.resolve(dev, epochs).to_dict(),
        runs,
        splits.dataset,
        taught,
    )


def recipe_config(net: SpecFile, epochs: int | None, seed: int | None) -> TrainConfig:
    """``net``'s recipe at this length and seed (else its own, else 1 epoch and seed 0)."""
    training = {"batch_size": 128, **DOCUMENTED_PROTOCOL, **net.training}
    epochs = epochs if epochs is not None else net.epochs or 1
    seed = seed if seed is not None else net.seed or 0
    try:
        cfg = TrainConfig(**{**training, "epochs": epochs, "seed": seed})
    except (TypeError, UsageError) as e:  # unknown names; values TrainConfig refuses
        raise ConfigError("spec", f"bad training settings: {e}") from None
    try:
        check_batch(net.spec, cfg.batch_size)
    except SpecError as e:
        raise ConfigError("spec", str(e)) from None
    return cfg


def teach(teacher: SpecFile, splits: Splits, speed: Speed) -> tuple[torch.Tensor, dict[str, Any]]:
    """Train the teacher once on the student's data, with its own recipe, epochs and seed (never
    judged on test); its outputs for the training images, and what it was."""
    cfg = recipe_config(teacher, None, None)
    if teacher.spec.num_classes != splits.classes:
        raise ConfigError(
            "spec", f"the teacher has {teacher.spec.num_classes} outputs, not {splits.classes}"
        )
    log.info(
        "teacher: %s (%s parameters), %d epoch(s), seed %d",
        describe(teacher.spec),
        f"{count_params(teacher.spec):,}",
        cfg.epochs,
        cfg.seed,
    )
    try:
        r = train(teacher.spec, cfg, splits, speed=speed, keep_model=True, evaluate_test=False)
    except Diverged as e:
        raise UsageError(f"the teacher's training diverged: {e}") from None
    assert r.model is not None
    log.info("teacher: val %.2f%%, %.0f s", r.val_accuracy, r.seconds)
    about = {
        "n_params": count_params(teacher.spec),
        "architecture": describe(teacher.spec),
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "val_accuracy": r.val_accuracy,
        "seconds": round(r.seconds, 3),
    }
    return soft_targets(r.model, splits.train), about
