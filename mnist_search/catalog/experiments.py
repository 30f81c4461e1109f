"""The six hand-made experiments of the write-up, loaded from experiments.json (data, not code)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from mnist_search.net.spec import ArchSpec, count_params, describe


@dataclass(frozen=True)
class Experiment:
    id: int
    title: str
    batch_size: int
    spec: ArchSpec
    documented: dict[str, Any]
    note: str = ""

    @property
    def true_params(self) -> int:
        return count_params(self.spec)

    @property
    def count_is_wrong(self) -> bool:
        return self.documented.get("params") != self.true_params

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "architecture": describe(self.spec),
            "batch_size": self.batch_size,
            "documented_params": self.documented.get("params"),
            "documented_params_text": self.documented.get("params_text"),
            "true_params": self.true_params,
            "count_is_wrong": self.count_is_wrong,
            "documented_train_accuracy": self.documented.get("train_accuracy"),
            "documented_test_accuracy": self.documented.get("test_accuracy"),
            "note": self.note,
            "spec": self.spec.to_dict(),
        }


@lru_cache(maxsize=1)
def documented_experiments() -> tuple[Experiment, ...]:
    raw = json.loads(resources.files(__package__).joinpath("experiments.json").read_text())
    return tuple(
        Experiment(
            id=e["id"],
            title=e["title"],
            batch_size=e["batch_size"],
            spec=ArchSpec.from_dict(e["spec"]),
            documented=e["documented"],
            note=e.get("note", ""),
        )
        for e in raw["experiments"]
    )


def get_experiment(exp_id: int) -> Experiment:
    for e in documented_experiments():
        if e.id == exp_id:
            return e
    valid = ", ".join(str(e.id) for e in documented_experiments())
    raise KeyError(f"unknown experiment {exp_id}; valid: {valid}")


# The write-up says: ReLU, max-pooling, log-softmax with negative log-likelihood, SGD with
# momentum, batch 512 (Exp1-5) or 128 (Exp6), 28x28 inputs. It does not give the learning rate,
# momentum, epochs or augmentation. The tool assumes lr 0.01 with momentum 0.9, one epoch, no
# augmentation, and the usual MNIST normalisation (mean 0.1307, std 0.3081).
PROTOCOL_NAME = "documented-v1"
# The batch size is each experiment's own.
DOCUMENTED_PROTOCOL = {
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "schedule": "constant",
    "augment": "none",
}
