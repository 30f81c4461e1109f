"""Spec files fed bytes: damaged, endless, binary, not a regular file. Each ends as one line naming
the file and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mnist_search.cli.app import app
from mnist_search.errors import UsageError
from mnist_search.testing import one_line_error
from mnist_search.training.retrain import SpecFile

runner = CliRunner()

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


VALID = {
    "spec": {"convs": [{"out_channels": 4, "kernel": 3, "pool": True}], "head": "gap"},
    "training": {"optimizer": "adamw", "lr": 0.003, "batch_size": 32},
    "epochs": 1,
}

# What the final stage writes (--best-spec): the same reader takes it.
BEST_SPEC = {
    **VALID,
    "seed": 0,
    "protocol": {"train_subset": None, "val_size": 5000, "split_seed": 0},
    "n_params": 90,
    "source_trial": 3,
    "result": {"seeds": [0], "val_accuracy": [98.0], "test_mean": 98.1},
    "budget": 25000,
    "storage": "sqlite:///studies/mnist-search.db",
}

BAD_SPECS = {
    "binary": bytes(range(256)) * 4,
    "latin-1 text": '{"spec": "caf\xe9"}'.encode("latin-1"),
    "deep array": b"[" * 100_000 + b"]" * 100_000,
    "deep object": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "huge": b'{"spec": "' + b"x" * (2 << 20) + b'"}',
    "empty": b"",
    "giant integer": b'{"spec": {"convs": [], "head": "gap"}, "epochs": ' + b"9" * 5000 + b"}",
    "utf-16": json.dumps(VALID).encode("utf-16"),
    "cut off": json.dumps(VALID).encode()[:-7],
    "not an object": b"[1, 2, 3]",
}


@pytest.mark.parametrize("kind", sorted(BAD_SPECS))
def test_a_bad_spec_file_is_one_line(kind, tmp_path):
    path = tmp_path / "net.json"
    path.write_bytes(BAD_SPECS[kind])
    line = one_line_error(runner.invoke(app, ["train", "--spec", str(path)]))
    assert line.startswith("error: --spec ") and str(path) in line


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "folder", "missing"])
def test_a_spec_that_is_no_regular_file_is_one_line(target, tmp_path):
    path = tmp_path / "net.json"
    if target == "folder":
        path.mkdir()
    elif target.startswith("/dev/"):
        path.symlink_to(target)
    line = one_line_error(runner.invoke(app, ["train", "--spec", str(path)]))
    assert str(path) in line


def test_a_fifo_spec_is_refused_without_blocking(tmp_path):
    path = tmp_path / "net.json"
    os.mkfifo(path)
    writer = subprocess.Popen(["sh", "-c", f"exec 3>{path}; sleep 30"])  # opened, never written
    try:
        one_line_error(runner.invoke(app, ["train", "--spec", str(path)]))
    finally:
        writer.kill()


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=8)).map(
            lambda p: _mutate(json.dumps(VALID).encode(), *p)
        ),
        st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=8)).map(
            lambda p: _mutate(json.dumps(BEST_SPEC).encode(), *p)
        ),
    )
)
def test_spec_bytes_read_or_are_a_usage_error(tmp_path_factory, blob):
    """The spec reader on random and mutated bytes: a SpecFile or one line, nothing else."""
    path = tmp_path_factory.mktemp("spec") / "net.json"
    path.write_bytes(blob)
    try:
        SpecFile.read(path)
    except UsageError as e:
        assert "\n" not in str(e)


def _mutate(raw: bytes, at: int, patch: bytes) -> bytes:
    at %= len(raw)
    return raw[:at] + patch + raw[at + len(patch) :]
