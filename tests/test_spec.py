import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mnist_search.experiments import documented_experiments, get_experiment
from mnist_search.model import build_model, module_params
from mnist_search.spec import (ArchSpec, ConvLayer, SpecError, count_params, describe,
                               layer_summary)

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
        ("Conv2d-1", 640), ("Conv2d-2", 18_464), ("Conv2d-3", 4_624), ("Linear-4", 4_010)]


layers = st.builds(ConvLayer, out_channels=st.integers(1, 40), kernel=st.sampled_from([1, 3, 5, 7]),
                   padding=st.integers(0, 3), pool=st.booleans())
specs = st.builds(ArchSpec, convs=st.lists(layers, min_size=1, max_size=5).map(tuple),
                  batchnorm=st.booleans(), dropout=st.sampled_from([0.0, 0.25]),
                  head=st.sampled_from(["flatten", "gap"]),
                  hidden=st.lists(st.integers(1, 64), max_size=2).map(tuple))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(specs)
def test_count_params_equals_built_module(spec):
    try:
        n = count_params(spec)
    except SpecError:
        assume(False)
    assert n == module_params(build_model(spec))


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
