"""The net's shape as data: exact parameter counts (the write-up's included), blocks, round trips."""

import json
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mnist_search.catalog.experiments import documented_experiments, get_experiment
from mnist_search.net.model import build_model, module_params
from mnist_search.net.spec import (
    KINDS,
    ArchSpec,
    ConvLayer,
    SpecError,
    count_params,
    describe,
    layer_summary,
    multiply_adds,
)

TRUE_COUNTS = {1: 480_176, 2: 27_738, 3: 4_418, 4: 12_968, 5: 23_426, 6: 23_426}


@pytest.mark.parametrize("exp_id", sorted(TRUE_COUNTS))
def test_documented_counts(exp_id):
    exp = get_experiment(exp_id)
    assert count_params(exp.spec) == TRUE_COUNTS[exp_id]
    assert module_params(build_model(exp.spec)) == TRUE_COUNTS[exp_id]


def test_exp1_documented_count_is_flagged_wrong():
    exp1 = get_experiment(1)
    assert exp1.count_is_wrong and "480,176" in exp1.note
    assert [e.id for e in documented_experiments() if e.count_is_wrong] == [1]


def test_layer_summary_matches_write_up():
    assert layer_summary(get_experiment(2).spec) == [
        ("Conv2d-1", 640),
        ("Conv2d-2", 18_464),
        ("Conv2d-3", 4_624),
        ("Linear-4", 4_010),
    ]


layers = st.builds(
    ConvLayer,
    out_channels=st.integers(1, 40),
    kernel=st.sampled_from([1, 3, 5, 7]),
    padding=st.integers(0, 3),
    pool=st.booleans(),
    kind=st.sampled_from(KINDS),
)


@st.composite
def residual_flags(draw, convs):
    """Ask for a residual or a repeat only where the block keeps its input's shape, so few draws
    are wasted."""
    out, c_in = [], 1
    for layer in convs:
        same = layer.out_channels == c_in and layer.kernel - 1 == 2 * layer.padding
        repeat = draw(st.integers(1, 3)) if same else 1
        out.append(replace(layer, residual=same and draw(st.booleans()), repeat=repeat))
        c_in = layer.out_channels
    return tuple(out)


specs = st.builds(
    ArchSpec,
    convs=st.lists(layers, min_size=1, max_size=5).flatmap(residual_flags),
    batchnorm=st.booleans(),
    dropout=st.sampled_from([0.0, 0.25]),
    head=st.sampled_from(["flatten", "gap"]),
    hidden=st.lists(st.integers(1, 64), max_size=2).map(tuple),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(specs)
def test_count_params_equals_built_module(spec):
    try:
        n = count_params(spec)
    except SpecError:
        assume(False)
    model = build_model(spec)
    assert n == module_params(model)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_separable_and_residual_blocks_are_counted_and_run():
    # Depthwise 3×3 on 8 channels (72) + pointwise 8→8 (64) + BN (16) = 152 for layer 3.
    spec = ArchSpec(
        (
            ConvLayer(8, 3, 1),
            ConvLayer(8, 3, 1, kind="sep"),
            ConvLayer(8, 3, 1, kind="sep", residual=True, pool=True),
            ConvLayer(12, 1),
            ConvLayer(12, 3, 1, residual=True),
        ),
        batchnorm=True,
        head="gap",
    )
    assert [n for _, n in layer_summary(spec)][1:3] == [152, 152]
    assert layer_summary(spec)[1][0] == "SepConv2d-2"
    assert count_params(spec) == module_params(build_model(spec))
    assert "sep@2,3" in describe(spec) and "res@3,5" in describe(spec)
    assert ArchSpec.from_dict(json.loads(spec.to_json())) == spec


def test_a_repeated_block_counts_its_weights_once_and_a_batchnorm_per_use():
    # sep 26→26: depthwise 234 + pointwise 676 once, BatchNorm 52 three times = 1,066.
    spec = ArchSpec(
        (
            ConvLayer(8, 3, 1, pool=True),
            ConvLayer(26, 3, 1, kind="sep"),
            ConvLayer(26, 3, 1, kind="sep", repeat=3),
        ),
        batchnorm=True,
        head="gap",
        hidden=(16,),
    )
    assert [n for _, n in layer_summary(spec)] == [88, 332, 1066, 432, 170]
    model = build_model(spec)
    assert count_params(spec) == module_params(model) == 2088
    assert "shared@3×3" in describe(spec)
    # three uses of one conv: three times its work, one set of weights
    macs = dict(multiply_adds(spec))["SepConv2d-3"]
    assert macs == 3 * (26 * 9 + 26 * 26) * 14 * 14
    again = ArchSpec.from_dict(json.loads(spec.to_json()))
    assert again == spec
    # nets without repeats serialise as before it existed
    assert "repeat" not in json.dumps(get_experiment(4).spec.to_dict())
    with pytest.raises(SpecError, match=r"conv layer 2: repeat=2 needs the same shape"):
        count_params(ArchSpec((ConvLayer(8), ConvLayer(16, 3, 1, repeat=2))))
    for bad in (0, 17, True, 2.0, "2"):
        with pytest.raises(SpecError, match="repeat"):
            ArchSpec.from_dict({"convs": [{"out_channels": 4}, {"out_channels": 4, "repeat": bad}]})


def test_a_factorized_block_is_a_kx1_and_a_1xk_conv_each_with_its_batchnorm():
    # The published 4,142-parameter net's third layer: 3×1 16→16 (768) and 1×3 16→16 (768),
    # a BatchNorm (32) after each: 1,600, two thirds of a 3×3 conv's 2,304 weights plus BN.
    spec = ArchSpec(
        (
            ConvLayer(8, 3, 0, pool=True),
            ConvLayer(16, 3, 0, pool=True),
            ConvLayer(16, 3, 0, kind="fact"),
            ConvLayer(4, 1, 0),
        ),
        batchnorm=True,
        dropout=0.1,
        hidden=(24,),
    )
    assert layer_summary(spec)[2] == ("FactConv2d-3", 1600)
    assert count_params(spec) == module_params(build_model(spec)) == 4082
    assert describe(spec) == "1→8→16→16→4 k1/3 fact@3 pool@1,2 bn drop0.1 | fc 36→24→10"
    # 3×1 over the 5×5 map gives 3×5, then 1×3 gives 3×3.
    assert dict(multiply_adds(spec))["FactConv2d-3"] == 16 * 16 * 3 * (3 * 5 + 3 * 3)
    assert ArchSpec.from_dict(json.loads(spec.to_json())) == spec
    # Without BatchNorm each of its two convs has a bias; repeated, each use its own BatchNorms.
    plain = replace(spec, batchnorm=False)
    assert layer_summary(plain)[2] == ("FactConv2d-3", 1536 + 32)
    shared = ArchSpec(
        (ConvLayer(8, 3, 1, pool=True), ConvLayer(8, 3, 1, kind="fact", residual=True, repeat=3)),
        batchnorm=True,
        head="gap",
    )
    assert layer_summary(shared)[1] == ("FactConv2d-2", 8 * 8 * 3 * 2 + 3 * 2 * 16)
    model = build_model(shared)
    assert count_params(shared) == module_params(model)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_residual_needs_the_same_shape():
    with pytest.raises(SpecError, match=r"conv layer 2: residual needs the same shape.*8×26×26"):
        count_params(ArchSpec((ConvLayer(8), ConvLayer(8, 3, 0, residual=True))))
    with pytest.raises(SpecError, match="kind='dense'; valid: conv, sep, fact"):
        count_params(ArchSpec((ConvLayer(8, kind="dense"),)))


def test_shrinking_map_is_rejected_naming_the_layer():
    spec = ArchSpec(tuple(ConvLayer(8, 5, 0, True) for _ in range(3)))
    with pytest.raises(SpecError, match=r"conv layer 3 .* 4×4 map"):
        count_params(spec)
    with pytest.raises(SpecError, match="max-pool after conv layer 2"):
        count_params(ArchSpec((ConvLayer(4, 13, 0, False), ConvLayer(4, 16, 0, True))))


def test_describe_and_round_trip():
    spec = get_experiment(4).spec
    assert describe(spec).startswith("1→8→16→8 ")
    assert describe(spec).endswith("| fc 200→50→10")
    again = ArchSpec.from_dict(spec.to_dict())
    assert again == spec and hash(again) == hash(spec)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(SpecError, match="unknown spec field"):
        ArchSpec.from_dict({"convs": [{"out_channels": 4}], "colour": 3})
    with pytest.raises(SpecError, match="head='mlp'"):
        ArchSpec.from_dict({"convs": [{"out_channels": 4}], "head": "mlp"})


@pytest.mark.parametrize(
    "d,message",
    [
        ({"convs": [{}]}, r"conv layer 1 needs field\(s\) \['out_channels'\]"),
        ({"convs": [{"out_channels": 4}, {"kernel": 3}]}, "conv layer 2 needs"),
        ({"hidden": [4]}, "spec needs 'convs'"),
    ],
)
def test_from_dict_names_a_missing_required_field(d, message):
    with pytest.raises(SpecError, match=message):
        ArchSpec.from_dict(d)


@pytest.mark.parametrize("part", ["training", "protocol"])
@pytest.mark.parametrize("value", [[], 0, "", False, [1]])
def test_a_spec_file_part_that_is_not_an_object_is_named(tmp_path, part, value):
    from mnist_search.errors import ConfigError
    from mnist_search.training.retrain import SpecFile

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"spec": {"convs": [{"out_channels": 4}]}, part: value}))
    with pytest.raises(ConfigError, match=f"'{part}' must be an object"):
        SpecFile.read(path)
    path.write_text(json.dumps({"spec": {"convs": [{"out_channels": 4}]}, part: None}))
    assert SpecFile.read(path).spec.convs[0].out_channels == 4  # null: absent


@pytest.mark.parametrize("plain", [True, False])
def test_conv_dropout_acts_after_every_block_and_costs_no_weights(plain):
    """Dropout after every conv block (the published tiny nets' habit): no weights, one Dropout
    per block, active in training only, and written to a spec file only where it is used."""
    import torch

    from mnist_search.net.model import build_model, module_params

    convs = [
        {"out_channels": 6, "kernel": 3, "padding": 1, "pool": True},
        {"out_channels": 8, "kernel": 3, "padding": 1, "pool": True},
        {"out_channels": 8, "kernel": 3, "padding": 1, **({} if plain else {"kind": "sep"})},
    ]
    base = ArchSpec.from_dict({"convs": convs, "batchnorm": True, "head": "gap"})
    spec = ArchSpec.from_dict({**base.to_dict(), "conv_dropout": 0.5})
    assert "conv_dropout" not in base.to_dict()  # nets stored before it serialise as before
    assert spec.to_dict()["conv_dropout"] == 0.5 and ArchSpec.from_dict(spec.to_dict()) == spec
    assert count_params(spec) == count_params(base) == module_params(build_model(spec))
    assert "convdrop0.5" in describe(spec) and "convdrop" not in describe(base)
    model = build_model(spec)
    drops = [m for m in model.features.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == len(convs) and all(d.p == 0.5 for d in drops)
    assert not any(isinstance(m, torch.nn.Dropout) for m in build_model(base).modules())
    x = torch.randn(4, 1, 28, 28)
    torch.manual_seed(0)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("value", [1.0, 1, -0.1, 2, "0.1", True, None, [0.1], float("nan")])
def test_a_bad_conv_dropout_is_named(value):
    with pytest.raises(SpecError, match="conv_dropout"):
        ArchSpec.from_dict({"convs": [{"out_channels": 4}], "conv_dropout": value})
