"""Random option values and random spec files thrown at the CLI: every draw ends with exit 0, or
exit 2 and one line that says what is wrong; never a traceback."""

import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mnist_search.cli.app import app

runner = CliRunner()

# Valid values are cheap ones, so that a draw that is all valid runs a tiny search quickly.
OPTIONS = {
    "--budget": ["300", "5000", "0", "-5", "50", "x", "1e30", str(10**30)],
    "--n-trials": ["1", "0", "-2", "x"],
    "--timeout": ["30", "0", "-1", "nan", "inf", "x"],
    "--epochs": ["1", "0", "-3", "10001", "1.5"],
    "--train-subset": ["64", "0", "-1", "60000", "abc"],
    "--val-size": ["100", "0", "-1", "60000", "59999"],
    "--seed": ["0", "7", "-1", str(2**40), "s"],
    "--workers": ["1", "0", "1000"],
    "--heartbeat": ["5", "0", "-1", "100000"],
    "--parallel": ["1", "0", "500"],
    "--pruner": ["median", "none", "bogus", ""],
    "--space": ["modern", "plain", "x"],
    "--device": ["cpu", "tpu", "cuda:9", "", "mps"],
    "--storage": [
        "notaurl",
        "sqlite:///no/dir/x.db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql://u:p@127.0.0.1:1/x",
        "mysql://x/y",
        "sqlite:///ok.db",
    ],
    "--study-name": ["ok", "../x", "", "a" * 200, "-x", ".hidden", "a/b"],
    "--final-seeds": ["0", "1", "-1", "1000"],
    "--final-top": ["1", "0", "-4", "1000"],
    "--final-epochs": ["1", "0", "99999"],
    "--final-augment": ["small", "own", "large", "none\t"],
    "--warm-start": ["documented", "all"],
    "--data-dir": ["/no/such/folder", "DATA"],
    "--artifacts": ["art", "/proc/x", "FILE/x"],
    "--best-spec": ["b.json", "/proc/b.json", "FILE/b.json"],
    "--top": ["3", "0", "-1"],
}

# The values each option must refuse (exit 2), whatever else is drawn with them. The others are
# valid, or valid only with some other values (a --best-spec where nothing can be written is
# refused only when there is a final stage to write it).
REFUSED = {
    "--budget": {"0", "-5", "50", "x", "1e30"},
    "--n-trials": {"0", "-2", "x"},
    "--timeout": {"0", "-1", "nan", "inf", "x"},
    "--epochs": {"0", "-3", "10001", "1.5"},
    "--train-subset": {"0", "-1", "60000", "abc"},
    "--val-size": {"0", "-1", "60000", "59999"},
    "--seed": {"-1", str(2**40), "s"},
    "--workers": {"0", "1000"},
    "--heartbeat": {"0", "-1", "100000"},
    "--parallel": {"0", "500"},
    "--pruner": {"bogus", ""},
    "--space": {"x"},
    "--device": {"tpu", "cuda:9", "mps"},
    "--storage": set(OPTIONS["--storage"]) - {"sqlite:///ok.db"},
    "--study-name": {"../x", "a" * 200, "-x", ".hidden", "a/b"},
    "--final-seeds": {"-1", "1000"},
    "--final-top": {"0", "-4", "1000"},
    "--final-epochs": {"0", "99999"},
    "--final-augment": {"large", "none\t"},
    "--warm-start": {"all"},
    "--data-dir": {"/no/such/folder"},
    "--artifacts": {"/proc/x", "FILE/x"},
    "--top": {"-1"},
}

FIXED = [
    "--n-trials",
    "1",
    "--train-subset",
    "64",
    "--val-size",
    "100",
    "--device",
    "cpu",
    "--data-dir",
    "DATA",
    "--timeout",
    "60",
    # A fixed final length: an automatic one would spend what is left of the 60 s on every draw.
    "--final-epochs",
    "1",
]


def _check(r) -> None:
    assert r.exit_code in (0, 2), (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    if r.exit_code == 2:
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr


def _invoke(args, data_dir):
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            open("FILE", "w").close()
            args = [str(data_dir) if a == "DATA" else a for a in args]
            return runner.invoke(app, args)
        finally:
            os.chdir(cwd)


@pytest.mark.parametrize(
    ("flag", "value"), [(f, v) for f, values in REFUSED.items() for v in sorted(values)]
)
def test_each_refused_value_alone_is_one_line_and_exit_2(data_dir, flag, value):
    r = _invoke(["optimize", *FIXED, flag, value], data_dir)
    _check(r)
    assert r.exit_code == 2, r.output


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.integers(0, 10**6), min_size=1, max_size=5)
)
def test_optimize_with_random_options(data_dir, picks):
    args = list(FIXED)
    chosen = {}
    for flag, k in picks.items():
        chosen[flag] = OPTIONS[flag][k % len(OPTIONS[flag])]
        args += [flag, chosen[flag]]
    r = _invoke(["optimize", *args], data_dir)
    _check(r)
    refused = {f: v for f, v in chosen.items() if v in REFUSED.get(f, ())}
    assert r.exit_code == 2 or not refused, (refused, r.output)
    if r.exit_code == 0:
        # Exit 0 means the run did its work: a study with its trial, and (unless --final-seeds
        # 0) the second stage either chose a net or said why not.
        assert "study " in r.stdout and " complete, " in r.stdout, r.output
        if chosen.get("--final-seeds", "1") != "0":
            said = ("chosen: trial", "final stage skipped:", "nothing chosen:")
            assert any(s in r.stdout for s in said), r.output


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10**12)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

VALID = {
    "spec": {
        "convs": [
            {"out_channels": 4, "kernel": 3, "padding": 1, "pool": True},
            {"out_channels": 4, "kernel": 3},
        ],
        "batchnorm": True,
        "dropout": 0.1,
        "head": "gap",
        "hidden": [8],
    },
    "training": {"optimizer": "adamw", "lr": 0.003, "batch_size": 32, "augment": "small"},
    "epochs": 1,
}

ODD = st.sampled_from(
    [None, True, False, -1, 0, 1, 3, 2.5, 10**9, float("inf"), "x", "no", [], {}, [1, 2], {"a": 1}]
)


def _paths(d, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _paths(v, prefix + (i,))


def _set(d, path, value):
    if not path:
        return value
    d = json.loads(json.dumps(d))
    cur = d
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return d


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.one_of(
        JSON.map(lambda doc: json.dumps(doc)),
        st.tuples(st.sampled_from(list(_paths(VALID))), ODD).map(
            lambda pv: json.dumps(_set(VALID, *pv))
        ),
        st.tuples(st.sampled_from(list(_paths(VALID))), st.text(max_size=6)).map(
            lambda pv: json.dumps(_set(VALID, pv[0], pv[1]))
        ),
        st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    )
)
def test_train_with_random_spec_files(data_dir, text):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.json")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        _check(
            _invoke(
                [
                    "train",
                    "--spec",
                    path,
                    "--train-subset",
                    "64",
                    "--val-size",
                    "100",
                    "--device",
                    "cpu",
                    "--data-dir",
                    "DATA",
                ],
                data_dir,
            )
        )
