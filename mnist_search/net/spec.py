"""Architecture spec: the shape of one candidate net, and its exact parameter count.

A spec is plain data. It can be counted, serialised, compared and rebuilt without Optuna and
without building a module, so the search can reject an over-budget proposal in microseconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mnist_search.errors import UsageError

HEADS = ("flatten", "gap")
# A full convolution; depthwise-separable (depthwise k×k, pointwise 1×1); or factorized (k×1,
# BatchNorm, ReLU, then 1×k: two thirds of a k×k conv's weights at k = 3, the same output size).
KINDS = ("conv", "sep", "fact")
CONV_NAMES = {"conv": "Conv2d", "sep": "SepConv2d", "fact": "FactConv2d"}
# ReLU, or LeakyReLU with slope 0.2 (the published 697- and 997-parameter nets: without
# normalisation a tiny net's ReLUs die more easily).
ACTIVATIONS = ("relu", "leaky")
LEAKY_SLOPE = 0.2


class SpecError(UsageError):
    """A spec that cannot be built (bad value or a feature map that shrinks away)."""


@dataclass(frozen=True)
class ConvLayer:
    out_channels: int
    kernel: int = 3
    padding: int = 0
    pool: bool = False  # 2x2 max-pool after the activation
    kind: str = "conv"
    residual: bool = False  # add the block's input before the activation (same shape only)
    # Apply the block this many times with the same conv weights, each time with its own
    # BatchNorm: depth for no weights (same shape in and out only; the pool follows the last).
    repeat: int = 1


@dataclass(frozen=True)
class ArchSpec:
    convs: tuple[ConvLayer, ...]
    batchnorm: bool = False
    dropout: float = 0.0
    head: str = "flatten"  # "flatten" the last feature map, or global average pooling ("gap")
    hidden: tuple[int, ...] = ()  # widths of hidden fully connected layers before the output
    in_channels: int = 1
    input_size: int = 28
    num_classes: int = 10
    # Dropout after every conv block (after its pool), as the published tiny nets do; ``dropout``
    # above acts in the head only. Last, so positional construction keeps its meaning.
    conv_dropout: float = 0.0
    activation: str = "relu"  # one of ACTIVATIONS, after every conv block and hidden layer

    def __post_init__(self) -> None:
        # Accept lists (from JSON) but store tuples so specs stay hashable.
        object.__setattr__(
            self,
            "convs",
            tuple(c if isinstance(c, ConvLayer) else ConvLayer(**c) for c in self.convs),
        )
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # ``repeat`` is written only where it is used, so the nets stored before it existed
        # serialise as they always did.
        d["convs"] = [
            {k: v for k, v in asdict(c).items() if k != "repeat" or v != 1} for c in self.convs
        ]
        d["hidden"] = list(self.hidden)
        if not self.conv_dropout:  # likewise: written only where it is used
            del d["conv_dropout"]
        if self.activation == "relu":
            del d["activation"]
        return d

    @classmethod
    def from_dict(cls, d: Any) -> ArchSpec:
        """A spec from untrusted data (a file, a stored trial): every field's type and range is
        checked, and the net's size bounded, before anything is built or allocated."""
        if not isinstance(d, dict):
            raise SpecError(f"a spec is a JSON object, not {type(d).__name__}")
        if "convs" not in d:
            raise SpecError("spec needs 'convs': a list of {out_channels, kernel, padding, pool}")
        _check_fields(d, cls, "spec")
        convs, hidden = d["convs"], d.get("hidden", [])
        if not isinstance(convs, list) or not 1 <= len(convs) <= LIMITS["convs"]:
            raise SpecError(f"convs: a list of 1 to {LIMITS['convs']} layers")
        if not isinstance(hidden, list) or len(hidden) > LIMITS["hidden_layers"]:
            raise SpecError(f"hidden: a list of at most {LIMITS['hidden_layers']} widths")
        for i, c in enumerate(convs, start=1):
            if not isinstance(c, dict):
                raise SpecError(f"conv layer {i}: an object, not {type(c).__name__}")
            _check_fields(c, ConvLayer, f"conv layer {i}")
        for j, h in enumerate(hidden, start=1):
            check_value(f"hidden layer {j}", h, int, (1, LIMITS["width"]))
        for name, want in FIXED.items():
            if d.get(name, want) != want:
                raise SpecError(f"{name}={d[name]!r}: the nets take {name}={want}")
        check_value("num_classes", d.get("num_classes", 10), int, (2, MAX_CLASSES))
        spec = cls(**d)
        validate(spec)
        work = activations(spec)
        if work > LIMITS["activations"]:
            raise SpecError(
                f"the net's feature maps hold {work:,} values per image; at most "
                f"{LIMITS['activations']:,} are allowed"
            )
        n = count_params(spec)
        if n > LIMITS["params"]:
            raise SpecError(f"{n:,} parameters; at most {LIMITS['params']:,} are allowed")
        macs = sum(m for _, m in multiply_adds(spec))
        if macs > LIMITS["multiply_adds"]:
            raise SpecError(
                f"{macs:,} multiply-adds per image; at most {LIMITS['multiply_adds']:,} are allowed"
            )
        return spec

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


# Bounds on a spec read from a file: generous for MNIST nets (Exp1, the largest documented,
# has 480,176 parameters and 58,496 feature-map values per image), small enough that a hostile
# file is refused in milliseconds instead of allocating gigabytes.
LIMITS = {
    "convs": 64,
    "hidden_layers": 8,
    "width": 4096,
    "kernel": 28,
    "repeat": 16,
    "padding": 14,
    "params": 20_000_000,
    "activations": 4_000_000,
    "multiply_adds": 500_000_000,
    "batch_bytes": 8 << 30,
}
FIXED = {"in_channels": 1, "input_size": 28}  # 28x28 grayscale, as every dataset here
MAX_CLASSES = 256  # labels are bytes in IDX files
RANGES = {
    "out_channels": (1, LIMITS["width"]),
    "kernel": (1, LIMITS["kernel"]),
    "padding": (0, LIMITS["padding"]),
    "repeat": (1, LIMITS["repeat"]),
    "dropout": (0.0, 0.999),
    "conv_dropout": (0.0, 0.999),
}
KIND_NAMES = {
    int: "a whole number",
    float: "a finite number",
    bool: "true or false",
    str: "a string",
}
TYPES = {"int": int, "float": float, "bool": bool, "str": str}  # dataclass annotations → types


def check_value(where: str, value: Any, kind: type, bounds: tuple | None = None) -> None:
    """One value from untrusted data: of ``kind`` exactly, and within ``bounds``."""
    if kind is float:
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    else:  # bool is an int to Python, and an int is not a bool: check exactly
        ok = type(value) is kind
    if not ok:
        raise SpecError(f"{where}={value!r}: must be {KIND_NAMES[kind]}")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        raise SpecError(f"{where}={value!r}: must be between {bounds[0]} and {bounds[1]}")


def _check_fields(d: dict[str, Any], cls: type, where: str) -> None:
    """Known names only, each of its declared type and within its range."""
    fields_ = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields_)
    if unknown:
        raise SpecError(f"unknown {where} field(s) {sorted(unknown)}; valid: {sorted(fields_)}")
    missing = [
        n
        for n, f in fields_.items()
        if n not in d
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SpecError(f"{where} needs field(s) {missing}; given: {sorted(d)}")
    for name, value in d.items():
        kind = TYPES.get(str(fields_[name].type))
        if kind is not None:
            check_value(
                f"{where}: {name}" if where != "spec" else name, value, kind, RANGES.get(name)
            )


def activations(spec: ArchSpec) -> int:
    """Feature-map values per image, summed over the conv layers (the memory a batch needs)."""
    total = 0
    for s, l in zip(conv_shapes(spec), spec.convs):
        side = s.size_in + 2 * l.padding - l.kernel + 1
        # A factorized block also keeps the k×1 conv's side × size_in map.
        maps = side * side + (side * s.size_in if l.kind == "fact" else 0)
        total += l.repeat * s.out_channels * maps
    return total


def check_batch(spec: ArchSpec, batch_size: int) -> None:
    """Refuse a batch whose activations (kept for the backward pass, about 3 copies in float32)
    would need more than ``LIMITS['batch_bytes']``."""
    need = 12 * activations(spec) * batch_size
    if need > LIMITS["batch_bytes"]:
        raise SpecError(
            f"batch_size={batch_size} with {activations(spec):,} feature-map values "
            f"per image needs about {need / 2**30:.0f} GiB; at most "
            f"{LIMITS['batch_bytes'] >> 30} GiB are allowed: use a smaller batch"
        )


def multiply_adds(spec: ArchSpec) -> list[tuple[str, int]]:
    """Multiply-adds per image of each layer, named as in ``layer_summary``."""
    rows = []
    for s, l in zip(conv_shapes(spec), spec.convs):
        side = s.size_in + 2 * l.padding - l.kernel + 1
        if l.kind == "sep":
            work = (s.in_channels * l.kernel**2 + s.in_channels * s.out_channels) * side**2
        elif l.kind == "fact":  # k×1 over a side × size_in map, then 1×k over side × side
            k, c_out = l.kernel, s.out_channels
            work = s.in_channels * c_out * k * side * s.size_in + c_out * c_out * k * side**2
        else:
            work = s.in_channels * s.out_channels * l.kernel**2 * side**2
        rows.append((f"{CONV_NAMES[l.kind]}-{s.index}", work * l.repeat))
    widths = [feature_count(spec), *spec.hidden, spec.num_classes]
    rows += [
        (f"Linear-{len(rows) + j}", a * b)
        for j, (a, b) in enumerate(zip(widths, widths[1:]), start=1)
    ]
    return rows


@dataclass(frozen=True)
class LayerShape:
    """What one conv block does to the feature map; used for messages and summaries."""

    index: int
    in_channels: int
    out_channels: int
    size_in: int
    size_out: int  # after the conv and, if any, the pool
    params: int
    pooled: bool = field(default=False)


def conv_params(
    c_in: int, c_out: int, kernel: int, batchnorm: bool, kind: str = "conv", repeat: int = 1
) -> int:
    # With BatchNorm the conv bias is redundant (BN's shift replaces it), so it is left out.
    # A separable block's depthwise part has no bias: the pointwise bias (or BN) follows it.
    # A repeated block shares its weights and bias; only its BatchNorms are one per use.
    # A factorized block is two convs, each with its BatchNorm (or its bias).
    convs = 2 if kind == "fact" else 1
    if kind == "sep":
        weight = c_in * kernel * kernel + c_in * c_out
    elif kind == "fact":
        weight = c_in * c_out * kernel + c_out * c_out * kernel
    else:
        weight = c_in * c_out * kernel * kernel
    return weight + convs * (2 * c_out * repeat if batchnorm else c_out)


def linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv_shapes(spec: ArchSpec) -> list[LayerShape]:
    """Walk the conv stack; raise SpecError naming the layer where the map would vanish."""
    if not spec.convs:
        raise SpecError("spec has no conv layers; at least one is needed")
    size, c_in, out = spec.input_size, spec.in_channels, []
    for i, layer in enumerate(spec.convs, start=1):
        if layer.out_channels < 1:
            raise SpecError(f"conv layer {i}: out_channels={layer.out_channels}; must be >= 1")
        if layer.kernel < 1:
            raise SpecError(f"conv layer {i}: kernel={layer.kernel}; must be >= 1")
        if layer.padding < 0:
            raise SpecError(f"conv layer {i}: padding={layer.padding}; must be >= 0")
        if layer.kind not in KINDS:
            raise SpecError(f"conv layer {i}: kind={layer.kind!r}; valid: {', '.join(KINDS)}")
        size_in = size
        size = size + 2 * layer.padding - layer.kernel + 1
        if size < 1:
            raise SpecError(
                f"conv layer {i} ({c_in}→{layer.out_channels}, kernel {layer.kernel}, padding "
                f"{layer.padding}) gets a {size_in}×{size_in} map and would shrink it below 1×1"
            )
        if layer.repeat < 1:
            raise SpecError(f"conv layer {i}: repeat={layer.repeat}; must be >= 1")
        for what, used in (
            ("residual", layer.residual),
            (f"repeat={layer.repeat}", layer.repeat > 1),
        ):
            if used and (c_in != layer.out_channels or size != size_in):
                raise SpecError(
                    f"conv layer {i}: {what} needs the same shape in and out, but it maps "
                    f"{c_in}×{size_in}×{size_in} to {layer.out_channels}×{size}×{size}"
                )
        if layer.pool:
            if size < 2:
                raise SpecError(
                    f"max-pool after conv layer {i} gets a {size}×{size} map and would shrink "
                    "it below 1×1"
                )
            size //= 2
        out.append(
            LayerShape(
                i,
                c_in,
                layer.out_channels,
                size_in,
                size,
                conv_params(
                    c_in,
                    layer.out_channels,
                    layer.kernel,
                    spec.batchnorm,
                    layer.kind,
                    layer.repeat,
                ),
                layer.pool,
            )
        )
        c_in = layer.out_channels
    return out


def validate(spec: ArchSpec) -> None:
    if spec.head not in HEADS:
        raise SpecError(f"head={spec.head!r}; valid: {', '.join(HEADS)}")
    if spec.activation not in ACTIVATIONS:
        raise SpecError(f"activation={spec.activation!r:.40}; valid: {', '.join(ACTIVATIONS)}")
    if not 0.0 <= spec.dropout < 1.0:
        raise SpecError(f"dropout={spec.dropout}; must be in [0, 1)")
    if not 0.0 <= spec.conv_dropout < 1.0:
        raise SpecError(f"conv_dropout={spec.conv_dropout}; must be in [0, 1)")
    for j, h in enumerate(spec.hidden, start=1):
        if h < 1:
            raise SpecError(f"hidden layer {j}: width={h}; must be >= 1")
    conv_shapes(spec)


def feature_count(spec: ArchSpec) -> int:
    """Number of features entering the first fully connected layer."""
    last = conv_shapes(spec)[-1]
    return last.out_channels * (last.size_out**2 if spec.head == "flatten" else 1)


def count_params(spec: ArchSpec) -> int:
    """Exact trainable parameter count, computed without building the model."""
    validate(spec)
    total = sum(s.params for s in conv_shapes(spec))
    widths = [feature_count(spec), *spec.hidden, spec.num_classes]
    total += sum(linear_params(a, b) for a, b in zip(widths, widths[1:]))
    return total


def describe(spec: ArchSpec) -> str:
    """One line a person can read, e.g. ``1→64→32→8 k3 pool@2,3 | fc 200→10``."""
    chans = "→".join(str(c) for c in [spec.in_channels, *(l.out_channels for l in spec.convs)])
    kernels = sorted({l.kernel for l in spec.convs})
    parts = [chans, "k" + "/".join(map(str, kernels))]
    padded = [str(i) for i, l in enumerate(spec.convs, start=1) if l.padding]
    if padded:
        # Where only some k×k blocks are padded (e.g. the first two not), say which are.
        mixed = any(l.kernel > 1 and not l.padding for l in spec.convs)
        parts.append("pad@" + ",".join(padded) if mixed else "pad")
    for tag, flag in (
        ("sep", lambda l: l.kind == "sep"),
        ("fact", lambda l: l.kind == "fact"),
        ("res", lambda l: l.residual),
        ("pool", lambda l: l.pool),
    ):
        where = [str(i) for i, l in enumerate(spec.convs, start=1) if flag(l)]
        if where:
            parts.append(f"{tag}@" + ",".join(where))
    shared = [f"{i}×{l.repeat}" for i, l in enumerate(spec.convs, start=1) if l.repeat > 1]
    if shared:
        parts.append("shared@" + ",".join(shared))
    if spec.batchnorm:
        parts.append("bn")
    if spec.activation != "relu":
        parts.append(spec.activation)
    if spec.conv_dropout:
        parts.append(f"convdrop{spec.conv_dropout:g}")
    if spec.dropout:
        parts.append(f"drop{spec.dropout:g}")
    head = "gap " if spec.head == "gap" else ""
    fc = "→".join(str(w) for w in [feature_count(spec), *spec.hidden, spec.num_classes])
    return " ".join(parts) + f" | {head}fc {fc}"


def layer_summary(spec: ArchSpec) -> list[tuple[str, int]]:
    """Per-layer parameter counts in the write-up's style (``Conv2d-1: 640``)."""
    rows = [
        (f"{CONV_NAMES[l.kind]}-{s.index}", s.params) for s, l in zip(conv_shapes(spec), spec.convs)
    ]
    widths = [feature_count(spec), *spec.hidden, spec.num_classes]
    n = len(rows)
    rows += [
        (f"Linear-{n + j}", linear_params(a, b))
        for j, (a, b) in enumerate(zip(widths, widths[1:]), start=1)
    ]
    return rows
