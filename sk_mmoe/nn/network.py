"""The Multi-gate Mixture-of-Experts network as a plain :class:`torch.nn.Module`.

The module is independent of the scikit-learn estimator: build it with the
number of input features and the output width of each task (its number of
classes, or 1 for a regression task), and call it on a float tensor of shape
``(batch, n_features)``.

All experts of a layer are computed by one batched matrix product over stacked
weights (``torch.baddbmm``), and so are the gates and the towers, instead of a
Python loop over experts, gates or tasks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from rtdl_num_embeddings import PeriodicEmbeddings
from torch import nn
from torch.nn import functional as F

from .missing import MissingFill
from .sequences import SequencePooling

__all__ = [
    "ACTIVATIONS",
    "GATES",
    "BatchedLinear",
    "DSelectKGate",
    "Gate",
    "ExpertNormalization",
    "FeatureEmbedding",
    "MMoENetwork",
    "NUMERIC_EMBEDDING_DIM",
    "NUMERIC_FREQUENCIES",
    "NUMERIC_LITE",
    "NoisyTopKGate",
    "NumericScaling",
    "SoftmaxGate",
    "SparseProjection",
    "embedding_size",
    "embedding_sizes",
    "first_level_width",
    "gate_balance_penalty",
    "gate_class",
    "make_gate",
]


class BatchedLinear(nn.Module):
    """``n_groups`` independent linear layers evaluated in one batched product.

    Parameters
    ----------
    n_groups : int
        Number of independent layers (experts, gates or towers).
    in_features, out_features : int
        Size of each layer's input and output.

    Notes
    -----
    ``forward`` takes either a shared input of shape ``(batch, in_features)``,
    fed to every group with a single ``addmm``, or one input per group of
    shape ``(n_groups, batch, in_features)``, fed through ``baddbmm``. It
    returns ``(n_groups, batch, out_features)``.
    """

    def __init__(self, n_groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.n_groups = n_groups
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(n_groups, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_groups, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same initialisation as each group's own nn.Linear would get.
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return _shared_input_products([self], x)[0]
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return (
            f"n_groups={self.n_groups}, in_features={self.in_features}, "
            f"out_features={self.out_features}"
        )


def _shared_input_products(
    layers: Sequence[BatchedLinear], x: torch.Tensor
) -> list[torch.Tensor]:
    """Every layer's output on the one input ``x`` ``(batch, in_features)``.

    One ``(batch, in) x (in, groups * out)`` product over the layers'
    weights side by side, instead of materialising ``n_groups`` copies of
    the input, and of one pass over it per layer (and, backward, one
    product per layer for its gradient).
    """
    weights = [layer.weight.permute(1, 0, 2).flatten(1) for layer in layers]
    biases = [layer.bias.flatten() for layer in layers]
    if len(layers) > 1:
        weights, biases = [torch.cat(weights, 1)], [torch.cat(biases)]
    out = torch.addmm(biases[0], x, weights[0])
    widths = [layer.n_groups * layer.out_features for layer in layers]
    return [
        part.view(x.shape[0], layer.n_groups, layer.out_features).transpose(0, 1)
        for part, layer in zip(out.split(widths, 1), layers, strict=True)
    ]


class _BatchedMLP(nn.Module):
    """MLP of ``n_groups`` independent members of equal shape.

    ``activation`` names the activation (a key of :data:`ACTIVATIONS`);
    ``normalization="layer"`` normalises each member's last layer before
    its activation (:class:`ExpertNormalization`).
    """

    def __init__(
        self,
        n_groups: int,
        in_features: int,
        hidden_layer_sizes: Sequence[int],
        dropout: float,
        activation: str = "relu",
        normalization: str | None = None,
    ) -> None:
        super().__init__()
        sizes = [in_features, *hidden_layer_sizes]
        self.layers = nn.ModuleList(
            BatchedLinear(n_groups, n_in, n_out)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out_features = sizes[-1]
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}."
            )
        self.activation = ACTIVATIONS[activation]
        if normalization not in (None, "layer"):
            raise ValueError(
                f"normalization must be 'layer' or None, got {normalization!r}."
            )
        self.output_norm = (
            ExpertNormalization(n_groups, self.out_features)
            if normalization == "layer" and len(self.layers)
            else None
        )

    def forward(
        self, x: torch.Tensor, first: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The members' outputs; ``first``, if given, is the first layer's
        output on ``x``, already computed."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = first if i == 0 and first is not None else layer(x)
            if i == last and self.output_norm is not None:
                x = self.output_norm(x)
            x = self.activation(x)
            if self.training and isinstance(self.dropout, nn.Dropout):
                x = _dropout(x, self.dropout.p)
            else:
                x = self.dropout(x)
        return x


def _dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout of ``x`` in training (``0 <= p < 1``).

    A mask drawn with ``rand_like``: about a quarter faster than
    ``F.dropout``'s ``bernoulli_``, forward and backward.
    """
    return x * ((torch.rand_like(x) >= p) * (1 / (1 - p)))


class _ExtractionLevel(nn.Module):
    """One level of experts and gates.

    The experts of a level are ordered ``[shared..., task 0's..., task 1's...]``.
    Task ``k``'s gate mixes the shared experts and task ``k``'s own ones; with
    ``with_shared_gate`` a further gate mixes every expert of the level to form
    the input of the next level's shared experts (PLE).
    """

    expert_input: torch.Tensor
    gate_index: torch.Tensor

    def __init__(
        self,
        in_features: int,
        n_tasks: int,
        n_experts: int,
        n_task_experts: int,
        expert_hidden_layer_sizes: Sequence[int],
        shared_gate: bool,
        with_shared_gate: bool,
        first_level: bool,
        dropout: float,
        gate: str = "softmax",
        gate_k: int = 2,
        gate_temperature: float = 1.0,
        expert_activation: str = "relu",
        expert_normalization: str | None = None,
    ) -> None:
        super().__init__()
        self.n_tasks = n_tasks
        self.n_experts = n_experts
        self.n_task_experts = n_task_experts
        self.first_level = first_level
        self.with_shared_gate = with_shared_gate
        self.n_total_experts = n_experts + n_tasks * n_task_experts
        self.experts = _BatchedMLP(
            self.n_total_experts,
            in_features,
            expert_hidden_layer_sizes,
            dropout,
            activation=expert_activation,
            normalization=expert_normalization,
        )
        self.out_features = self.experts.out_features

        # Which input each expert reads at levels after the first: row k of
        # the stacked inputs is task k's, row n_tasks the shared one.
        expert_input = [n_tasks] * n_experts + [
            k for k in range(n_tasks) for _ in range(n_task_experts)
        ]
        self.register_buffer(
            "expert_input", torch.tensor(expert_input, dtype=torch.long), False
        )

        n_task_gates = 1 if shared_gate else n_tasks
        n_gated = n_experts + n_task_experts
        gate_params = {"gate_k": gate_k, "gate_temperature": gate_temperature}
        self.task_gates = make_gate(
            gate, n_task_gates, in_features, n_gated, gate_params
        )
        # Column j of gate k's softmax goes to expert gate_index[k, j].
        gate_index = [
            list(range(n_experts))
            + [n_experts + k * n_task_experts + j for j in range(n_task_experts)]
            for k in range(n_task_gates)
        ]
        self.register_buffer(
            "gate_index", torch.tensor(gate_index, dtype=torch.long), False
        )
        self.shared_gate = (
            make_gate(gate, 1, in_features, self.n_total_experts, gate_params)
            if with_shared_gate
            else None
        )

    def forward(
        self,
        task_inputs: torch.Tensor,
        shared_input: torch.Tensor,
        gate_dropout: float,
        record: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Mix the level's experts for each task (and for the shared path).

        ``task_inputs`` is ``(n_tasks, batch, in)`` or, at the first level,
        the raw ``(batch, in)`` input shared by everything. ``record``, if
        given, receives every gate's weights over its own experts.
        """
        if self.first_level:
            expert_out, gates = self._first_level(shared_input)
        else:
            stacked = torch.cat([task_inputs, shared_input.unsqueeze(0)], dim=0)
            expert_out = self.experts(stacked.index_select(0, self.expert_input))
            gate_in_tasks = task_inputs
            if self.task_gates.n_groups == 1:
                # One gate for all tasks: every task's input is the same.
                gate_in_tasks = task_inputs[0]
            gates = self.task_gates(gate_in_tasks)
        # (gates, batch, n_gated) -> weights over every expert of the level.
        weights = self._mix_weights(gates, self.gate_index, gate_dropout, record)
        if weights.shape[0] == 1 and self.n_tasks > 1:
            weights = weights.expand(self.n_tasks, -1, -1)
        task_out = _mix_experts(weights, expert_out)
        shared_out = None
        if self.shared_gate is not None:
            shared_weights = self._mix_weights(
                self.shared_gate(shared_input), None, gate_dropout, record
            )
            shared_out = _mix_experts(shared_weights, expert_out)[0]
        return task_out, shared_out, weights

    def _first_level(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The experts' outputs and the task gates' weights on the input.

        With softmax gates, the experts' first layer and the gates read
        ``x`` in one matrix product.
        """
        gates = self.task_gates
        if type(gates) is not SoftmaxGate or not len(self.experts.layers):
            return self.experts(x), gates(x)
        layer = cast(BatchedLinear, self.experts.layers[0])
        first, logits = _shared_input_products([layer, gates], x)
        return self.experts(x, first=first), gates.weigh(logits)

    def _mix_weights(
        self,
        weights: torch.Tensor,
        index: torch.Tensor | None,
        gate_dropout: float,
        record: list[torch.Tensor] | None,
    ) -> torch.Tensor:
        if record is not None:
            record.append(weights)
        # One expert: nothing to drop, and no random draw that would shift
        # the other dropout masks away from the same model without it.
        if gate_dropout > 0 and self.training and weights.shape[-1] > 1:
            weights = _drop_experts(weights, gate_dropout)
        if index is None or index.shape[1] == self.n_total_experts:
            return weights
        full = weights.new_zeros(*weights.shape[:2], self.n_total_experts)
        expanded = index.unsqueeze(1).expand(-1, weights.shape[1], -1)
        return full.scatter(-1, expanded, weights)


# PyTorch's CPU batched product computes each product of fewer than this
# many multiply-adds with a scalar loop instead of a matrix kernel.
_SMALL_BATCHED_PRODUCT = 400


def _mix_experts(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """``torch.einsum("kbe,ebh->kbh", weights, experts)``: ``k`` mixes of
    the experts' outputs ``(n_experts, batch, h)`` by the gate weights
    ``(k, batch, n_experts)``.

    The einsum is a batched product of one ``(k, n_experts) x (n_experts,
    h)`` product per row; when that product is small, a sum of ``n_experts``
    broadcast products is several times faster (forward and backward).
    """
    n_mixes, _, n_experts = weights.shape
    if n_mixes * n_experts * experts.shape[-1] >= _SMALL_BATCHED_PRODUCT:
        return torch.einsum("kbe,ebh->kbh", weights, experts)
    columns = weights.unsqueeze(-1).unbind(-2)
    outputs = experts.unbind(0)
    mixed = columns[0] * outputs[0]
    in_place = not (
        torch.is_grad_enabled() and (weights.requires_grad or experts.requires_grad)
    )
    for column, output in zip(columns[1:], outputs[1:], strict=True):
        if in_place:
            mixed.addcmul_(column, output)
        else:
            mixed = torch.addcmul(mixed, column, output)
    return mixed


def _softmax_last_dim(logits: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(logits, dim=-1)``, fast for a short last dimension.

    On CPU, PyTorch vectorises a softmax over the last dimension only across
    that dimension, which is slow when it is shorter than a SIMD register
    (gates over a few experts, a few classes): several times slower than the
    same softmax over another dimension, which is vectorised across rows.
    """
    if logits.device.type != "cpu" or logits.dim() < 2:
        return torch.softmax(logits, dim=-1)
    weights = torch.softmax(logits.transpose(-1, -2).contiguous(), dim=-2)
    # Back to row-major: batched products downstream are slow on strided rows.
    return weights.transpose(-1, -2).contiguous()


def _drop_experts(weights: torch.Tensor, p: float) -> torch.Tensor:
    """Zero each expert's gate weight with probability ``p`` and renormalise.

    This is the fix for gate polarisation of Zhao et al. (2019). Rows where
    every expert was dropped keep their original weights, so the output is
    always a distribution.
    """
    keep = torch.rand_like(weights) >= p
    dropped = weights * keep
    total = dropped.sum(dim=-1, keepdim=True)
    all_dropped = total <= 0
    dropped = torch.where(all_dropped, weights, dropped)
    total = torch.where(all_dropped, torch.ones_like(total), total)
    return dropped / total


#: The activations of the expert layers, by name.
ACTIVATIONS = {"relu": F.relu, "silu": F.silu}

# DSelect-k's smooth step is linear-ish on (-gamma/2, gamma/2) and flat
# outside, where it passes no gradient: the selectors start well inside.
#: The largest ``ensemble_size``: each member multiplies the rows of every
#: batch (TabM uses 32).
MAX_ENSEMBLE_SIZE = 1024

_SMOOTH_STEP_GAMMA = 1.0
_SELECTOR_INIT_SCALE = 0.1


class Gate:
    """What a gate class is: ``n_gates`` gates that each weigh ``n_experts``.

    A gate class is an :class:`torch.nn.Module` built as ``cls(n_gates,
    in_features, n_experts, **own)``, where ``own`` are its hyperparameters
    (:meth:`own_arguments` picks them from the network's gate parameters);
    its ``forward`` maps an input ``(batch, in_features)`` shared by every
    gate, or ``(n_gates, batch, in_features)``, to weights ``(n_gates,
    batch, n_experts)`` whose rows are distributions; its ``n_groups`` is
    ``n_gates``. It describes itself: :meth:`check` refuses hyperparameters
    that build no gate, and :meth:`input_width` is how many units of linear
    maps read its input, which a sparse projection in front of the gate
    keeps (see :func:`first_level_width`). A new gate is such a class and
    its entry in :data:`GATES`.
    """

    #: The value of the ``gate`` parameter that selects it.
    name: str

    #: The network's gate parameters it takes -> its constructor's names.
    hyperparameters: dict[str, str] = {"gate_temperature": "temperature"}

    @classmethod
    def own_arguments(cls, gate_params: dict[str, Any]) -> dict[str, Any]:
        """Its constructor's hyperparameters, from the network's
        ``gate_params`` (``{"gate_k": ..., "gate_temperature": ...}``)."""
        return {
            argument: gate_params[name]
            for name, argument in cls.hyperparameters.items()
            if name in gate_params
        }

    @classmethod
    def check(cls, n_experts: int, gate_params: dict[str, Any]) -> None:
        """Refuse ``gate_params`` that build no gate over ``n_experts``."""

    @classmethod
    def input_width(cls, n_experts: int, gate_params: dict[str, Any]) -> int:
        """Units of the linear maps that read one gate's input."""
        raise NotImplementedError


class _TopKGate(Gate, nn.Module):
    """A gate that weighs at most ``gate_k`` of its experts; ``_build``
    adds its layers."""

    hyperparameters = {"gate_k": "k", "gate_temperature": "temperature"}

    def __init__(
        self,
        n_gates: int,
        in_features: int,
        n_experts: int,
        k: int = 2,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.n_groups = n_gates
        self.n_experts = n_experts
        self.k = k
        self.temperature = float(temperature)
        self._build(n_gates, in_features, n_experts)

    def _build(self, n_gates: int, in_features: int, n_experts: int) -> None:
        raise NotImplementedError

    @classmethod
    def check(cls, n_experts: int, gate_params: dict[str, Any]) -> None:
        k = gate_params.get("gate_k", 2)
        if k > n_experts:
            raise ValueError(
                f"gate_k={k} exceeds the experts a gate mixes ({n_experts}: "
                f"n_experts + n_task_experts); gate={cls.name!r} selects "
                f"gate_k of them."
            )


class SoftmaxGate(Gate, BatchedLinear):
    """``n_gates`` softmax gates over ``n_experts`` experts: ``softmax(W x / T)``.

    Parameters
    ----------
    n_gates, in_features, n_experts : int
        Number of gates, their input width and the experts each one mixes.
    temperature : float, default=1.0
        Divides the logits: above 1 the gate starts (and stays) softer.
    """

    name = "softmax"

    @classmethod
    def input_width(cls, n_experts: int, gate_params: dict[str, Any]) -> int:
        return n_experts

    def __init__(
        self, n_gates: int, in_features: int, n_experts: int, temperature: float = 1.0
    ) -> None:
        super().__init__(n_gates, in_features, n_experts)
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weigh(super().forward(x))

    def weigh(self, logits: torch.Tensor) -> torch.Tensor:
        """The gates' weights for their logits ``W x``."""
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return _softmax_last_dim(logits)


def _code_bits(n_experts: int) -> int:
    """Bits of the binary codes that DSelect-k selects ``n_experts`` by."""
    return max(1, math.ceil(math.log2(n_experts)))


def _smooth_step(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """0 below ``-gamma/2``, 1 above ``gamma/2``, a cubic in between."""
    cubic = (-2.0 / gamma**3) * t**3 + (1.5 / gamma) * t + 0.5
    return torch.where(
        t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, 1.0, cubic)
    )


class DSelectKGate(_TopKGate):
    """``n_gates`` DSelect-k gates: a smooth mixture of at most ``k`` experts.

    Each of the ``k`` selectors of a gate picks one expert by a binary code
    of ``ceil(log2(n_experts))`` smooth steps of a linear function of the
    input; a softmax over ``k`` further logits mixes the selected experts
    (Hazimeh et al., 2021, per-example gating). Selectors start undecided
    (every expert a little weight); once training has moved a sample's
    selector logits out of the smooth step's ramp, the gate weighs at most
    ``k`` experts for it (the original's entropy penalty, which drives the
    selectors there, is not included). With a number of experts that is not a power
    of 2, the codes past the last expert select the experts from the first
    again (code ``c`` selects expert ``c % n_experts``), so every code is
    an expert and the weights always sum to 1 (the original adds a penalty
    on the weight of such codes instead).

    Parameters
    ----------
    n_gates, in_features, n_experts : int
        Number of gates, their input width and the experts each one mixes.
    k : int, default=2
        Selectors per gate: the most experts a gate ends up mixing.
    temperature : float, default=1.0
        Divides the logits of the softmax over the selectors.
    """

    name = "dselect_k"

    codes: torch.Tensor
    fold: torch.Tensor

    @classmethod
    def input_width(cls, n_experts: int, gate_params: dict[str, Any]) -> int:
        k = gate_params.get("gate_k", 2)
        return k * _code_bits(n_experts) + k  # selectors, then their mix

    def _build(self, n_gates: int, in_features: int, n_experts: int) -> None:
        k = self.k
        self.n_bits = _code_bits(n_experts)
        self.selectors = BatchedLinear(n_gates, in_features, k * self.n_bits)
        with torch.no_grad():
            self.selectors.weight.mul_(_SELECTOR_INIT_SCALE)
            self.selectors.bias.mul_(_SELECTOR_INIT_SCALE)
        self.selector_weights = BatchedLinear(n_gates, in_features, k)
        # codes[b, c]: bit b of code c; code c selects expert c % n_experts.
        n_codes = 2**self.n_bits
        codes = [[(c >> b) & 1 for c in range(n_codes)] for b in range(self.n_bits)]
        self.register_buffer(
            "codes", torch.tensor(codes, dtype=torch.float32), persistent=False
        )
        fold = torch.zeros(n_codes, n_experts)
        fold[torch.arange(n_codes), torch.arange(n_codes) % n_experts] = 1.0
        self.register_buffer("fold", fold, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bits = _smooth_step(self.selectors(x), _SMOOTH_STEP_GAMMA)
        # (gates, batch, k, bits, 1) against codes (bits, experts).
        bits = bits.unflatten(-1, (self.k, self.n_bits)).unsqueeze(-1)
        codes = self.codes
        # A distribution over the codes (a product of Bernoullis), then over
        # the experts.
        choice = (bits * codes + (1.0 - bits) * (1.0 - codes)).prod(dim=-2)
        choice = choice @ self.fold
        logits = self.selector_weights(x)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        mix = _softmax_last_dim(logits)
        return torch.einsum("gbk,gbke->gbe", mix, choice)


class NoisyTopKGate(_TopKGate):
    """``n_gates`` noisy top-k softmax gates (Shazeer et al., 2017).

    In training each logit gets Gaussian noise of a learned, input-dependent
    scale, ``H = W x + N(0, 1) softplus(W_noise x)``; only the ``k`` largest
    logits of a sample are kept, the others set to minus infinity, before
    the softmax: every sample mixes exactly ``k`` experts, and the noise
    lets the other experts win some samples (load balancing, with
    ``gate_balance``). Without noise at prediction.

    Parameters
    ----------
    n_gates, in_features, n_experts : int
        Number of gates, their input width and the experts each one mixes.
    k : int, default=2
        Experts each sample mixes.
    temperature : float, default=1.0
        Divides the logits.
    """

    name = "noisy_top_k"

    @classmethod
    def input_width(cls, n_experts: int, gate_params: dict[str, Any]) -> int:
        return 2 * n_experts  # logits and noise scales

    def _build(self, n_gates: int, in_features: int, n_experts: int) -> None:
        self.logits = BatchedLinear(n_gates, in_features, n_experts)
        self.noise = BatchedLinear(n_gates, in_features, n_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(x)
        if self.training:
            scale = F.softplus(self.noise(x))
            logits = logits + torch.randn_like(logits) * scale
        if self.temperature != 1.0:
            logits = logits / self.temperature
        if self.k < logits.shape[-1]:
            kth = logits.topk(self.k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return _softmax_last_dim(logits)


#: The gates, by the name of the ``gate`` parameter.
GATES: dict[str, type[Gate]] = {
    cls.name: cls
    for cls in (
        SoftmaxGate,
        DSelectKGate,
        NoisyTopKGate,
    )
}


def gate_class(kind: str) -> type[Gate]:
    """The gate class named ``kind`` (a key of :data:`GATES`)."""
    if kind not in GATES:
        raise ValueError(f"gate must be one of {sorted(GATES)}, got {kind!r}.")
    return GATES[kind]


def make_gate(
    kind: str,
    n_gates: int,
    in_features: int,
    n_experts: int,
    gate_params: dict[str, Any],
) -> nn.Module:
    """``n_gates`` gates of type ``kind`` over ``n_experts`` experts, with
    their own hyperparameters taken from ``gate_params``."""
    cls = gate_class(kind)
    cls.check(n_experts, gate_params)
    # A gate class is a Module built from these arguments (see Gate).
    build = cast(Callable[..., nn.Module], cls)
    return build(n_gates, in_features, n_experts, **cls.own_arguments(gate_params))


def first_level_width(
    n_tasks: int,
    n_experts: int,
    n_task_experts: int,
    expert_hidden_layer_sizes: Sequence[int],
    shared_gate: bool,
    n_levels: int,
    gate: str,
    gate_params: dict[str, Any],
) -> int:
    """Units of the linear maps that read the first level's input.

    The first layer of every expert, every task gate's (one for all tasks
    with ``shared_gate``) and, with more levels, the shared gate's: as
    :class:`MMoENetwork` builds them. A linear projection of the input to
    this width loses nothing of what the level can compute.
    """
    cls = gate_class(gate)
    gated = n_experts + n_task_experts
    n_total = n_experts + n_tasks * n_task_experts
    n_task_gates = 1 if shared_gate else n_tasks
    width = n_total * int(expert_hidden_layer_sizes[0])
    width += n_task_gates * cls.input_width(gated, gate_params)
    if n_levels > 1:
        width += cls.input_width(n_total, gate_params)
    return width


def gate_balance_penalty(weights: torch.Tensor) -> torch.Tensor:
    """How far a batch's average gate is from using every expert equally.

    ``weights`` is ``(n_gates, batch, n_experts)``. For each gate, the
    Kullback-Leibler divergence of its batch-average weights from the
    uniform distribution, ``log(n_experts) - entropy(mean weights)``,
    averaged over the gates: 0 when the batch uses every expert equally,
    ``log(n_experts)`` when it uses one only. A sample may still put all
    of its weight on one expert (sparse, specialised gates); only the
    batch as a whole must spread. Zero for a single expert.
    """
    n_experts = weights.shape[-1]
    if n_experts < 2:
        return weights.new_zeros(())
    usage = weights.mean(dim=1)
    entropy = -(usage * usage.clamp_min(1e-12).log()).sum(dim=-1)
    return (math.log(n_experts) - entropy).mean()


class ExpertNormalization(nn.Module):
    """Layer normalisation of every expert's output, with per-expert affine.

    Input and output ``(n_experts, batch, width)``: each expert's output
    vector is centred and scaled to unit variance, then multiplied and
    shifted by the expert's own learned weights (initially 1 and 0).
    """

    def __init__(self, n_experts: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.weight = nn.Parameter(torch.ones(n_experts, 1, width))
        self.bias = nn.Parameter(torch.zeros(n_experts, 1, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, (self.width,)), self.weight)


class SparseProjection(nn.Module):
    """A linear layer for wide sparse inputs, at a cost set by the non-zeros.

    A sparse CSR batch is multiplied through :func:`torch.nn.functional.
    embedding_bag` (a weighted sum of the rows of the weight picked by each
    row's non-zero columns), whose gradient is sparse too: a step touches
    only the rows of the columns present in the batch, so its cost grows
    with the batch's non-zeros, not with the width (train ``weight`` with an
    optimizer for sparse gradients, such as :class:`torch.optim.SparseAdam`;
    the estimators use the same update through index operations, without
    weight decay, see :ref:`performance_sparse`). A dense input is
    multiplied as usual.

    Parameters
    ----------
    in_features, out_features : int
        Input width (the sparse columns) and output width.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.layout == torch.sparse_csr:
            rows = x.crow_indices()
            out = F.embedding_bag(
                x.col_indices(),
                self.weight,
                rows[:-1],
                mode="sum",
                sparse=True,
                per_sample_weights=x.values(),
                include_last_offset=False,
            )
            return out + self.bias
        return torch.addmm(self.bias, x, self.weight)


class NumericScaling(nn.Module):
    """Robust scaling and smooth clipping of the numeric input columns.

    ``z = (x - center) / scale`` followed by ``z / sqrt(1 + (z / 3)^2)``,
    which maps heavy tails (money amounts, counts) into about ``(-3, 3)``
    smoothly (Holzmueller et al., 2024), at the price of bending every
    value a little (0.95 z at one scale, 0.71 z at three): targets linear
    in the inputs are better served by the scaling alone (``clip=False``).
    ``center`` and ``scale`` are buffers that the estimator sets from the
    training data (median and interquartile range); categorical columns
    pass through unchanged.

    Parameters
    ----------
    n_features : int
        Number of input columns.
    categorical_columns : sequence of int, default=()
        The columns not to scale.
    clip : bool, default=True
        Clip the scaled values smoothly.
    """

    numeric: torch.Tensor
    center: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self,
        n_features: int,
        categorical_columns: Sequence[int] = (),
        clip: bool = True,
    ):
        super().__init__()
        self.clip = clip
        mask = torch.ones(n_features, dtype=torch.bool)
        if len(categorical_columns):
            mask[torch.as_tensor(list(categorical_columns))] = False
        self.register_buffer("numeric", mask, persistent=False)
        self.register_buffer("center", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    def set_statistics(self, center: torch.Tensor, scale: torch.Tensor) -> None:
        """Set the center and scale of every column (ignored off the numeric)."""
        with torch.no_grad():
            self.center.copy_(torch.where(self.numeric, center, 0.0))
            self.scale.copy_(torch.where(self.numeric, scale, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.center) / self.scale
        if self.clip:
            z = z * torch.rsqrt(1.0 + (z / 3.0).square())
        return torch.where(self.numeric, z, x)


#: Size of each numeric column's periodic embedding.
NUMERIC_EMBEDDING_DIM = 8
#: Number of frequencies of each numeric column's periodic embedding in
#: networks that do not say (those saved before the option had 48).
NUMERIC_FREQUENCIES = 48
#: Whether the periodic embedding's linear layer is shared by all numeric
#: columns (``lite``) in networks that do not say (before the option: not).
NUMERIC_LITE = False
# Initial scale of the periodic embeddings' frequencies (``sigma`` of
# Gorishniy et al., 2022), for inputs scaled to about (-3, 3).
_FREQUENCY_INIT_SCALE = 0.1


class FeatureEmbedding(nn.Module):
    """Every input column as a vector: numeric values and categorical codes.

    The input holds every column as float32: numeric values, and for the
    categorical columns integer codes ``0 .. cardinality - 1`` (see
    :mod:`sk_mmoe._data.features`). All categorical columns share one embedding
    table (each column its own rows), so one lookup embeds every column of a
    batch: with one ``embedding_dim``, a row per code; with a size per
    column (``embedding_dim`` a sequence, e.g. :func:`embedding_sizes`), a
    one-wide row per code and dimension, so that a column of a few codes
    takes a few dimensions and one of many codes more. Numeric columns pass
    as they are, or, with
    ``numeric_embedding=True``, each becomes a vector of periodic features
    (``cos`` and ``sin`` of learned frequencies, then a linear layer and a
    ReLU per column: the PLR embeddings of Gorishniy et al., 2022, from
    :class:`rtdl_num_embeddings.PeriodicEmbeddings`), which lets the
    experts draw sharp, non-monotone functions of a single number.

    Parameters
    ----------
    n_features : int
        Number of input columns, numeric and categorical.
    categorical_columns : sequence of int, default=()
        Positions of the categorical columns.
    cardinalities : sequence of int, default=()
        Number of codes of each categorical column.
    embedding_dim : int or sequence of int, default=None
        Size of every categorical column's vector, or of each column's (in
        the order of ``categorical_columns``); by default
        :func:`embedding_size` of the cardinalities for all.
    numeric_embedding : bool, default=False
        Embed the numeric columns (vectors of :data:`NUMERIC_EMBEDDING_DIM`).
    n_frequencies : int, default=48
        Number of learned frequencies of each numeric column's embedding.
    lite : bool, default=False
        One linear layer after the periodic features, shared by all numeric
        columns, instead of one per column.
    """

    numeric_columns: torch.Tensor
    categorical_columns: torch.Tensor
    offsets: torch.Tensor
    position_column: torch.Tensor
    position_base: torch.Tensor
    position_stride: torch.Tensor

    def __init__(
        self,
        n_features: int,
        categorical_columns: Sequence[int] = (),
        cardinalities: Sequence[int] = (),
        embedding_dim: int | Sequence[int] | None = None,
        numeric_embedding: bool = False,
        n_frequencies: int = NUMERIC_FREQUENCIES,
        lite: bool = NUMERIC_LITE,
    ) -> None:
        super().__init__()
        categorical = [int(j) for j in categorical_columns]
        if len(categorical) != len(cardinalities):
            raise ValueError(
                "categorical_columns and cardinalities must have the same length."
            )
        categorical_set = set(categorical)
        numeric = [j for j in range(n_features) if j not in categorical_set]
        if not (categorical or (numeric_embedding and numeric)):
            raise ValueError("FeatureEmbedding needs columns to embed.")
        self.register_buffer("numeric_columns", torch.tensor(numeric), False)
        self.register_buffer("categorical_columns", torch.tensor(categorical), False)
        self.table = None
        self.numeric_embedding = None
        self.column_dims = None
        categorical_width = 0
        if categorical and isinstance(embedding_dim, Sequence):
            self.column_dims = tuple(int(d) for d in embedding_dim)
            self._build_column_table(list(cardinalities))
            categorical_width = sum(self.column_dims)
        elif categorical and not isinstance(embedding_dim, Sequence):
            offsets = [0, *list(itertools.accumulate(cardinalities))[:-1]]
            self.register_buffer("offsets", torch.tensor(offsets), False)
            embedding_dim = embedding_dim or embedding_size(cardinalities)
            self.table = nn.Embedding(sum(cardinalities), embedding_dim)
            nn.init.normal_(self.table.weight, std=1.0 / math.sqrt(embedding_dim))
            categorical_width = len(categorical) * embedding_dim
        if numeric_embedding and numeric:
            self.numeric_embedding = PeriodicEmbeddings(
                len(numeric),
                NUMERIC_EMBEDDING_DIM,
                n_frequencies=n_frequencies,
                frequency_init_scale=_FREQUENCY_INIT_SCALE,
                lite=lite,
            )
        numeric_width = 1 if self.numeric_embedding is None else NUMERIC_EMBEDDING_DIM
        self.out_features = len(numeric) * numeric_width + categorical_width

    def _build_column_table(self, cardinalities: list[int]) -> None:
        """The table of per-column sizes: code ``c`` of column ``j`` owns
        rows ``base_j + c * d_j .. + d_j - 1`` (one value each), and output
        position ``p`` reads row ``code[column_p] * d_p + base_p``."""
        dims = self.column_dims
        assert dims is not None  # set by the caller
        if len(dims) != len(cardinalities) or min(dims) < 1:
            raise ValueError(
                "embedding_dim must give a positive size per categorical "
                f"column, got {list(dims)} for {len(cardinalities)} columns."
            )
        sizes = [n * d for n, d in zip(cardinalities, dims, strict=True)]
        starts = [0, *itertools.accumulate(sizes)][:-1]
        self._column_starts = starts
        self.table = nn.Embedding(sum(sizes), 1)
        with torch.no_grad():
            for start, size, d in zip(starts, sizes, dims, strict=True):
                self.table.weight[start : start + size].normal_(std=d**-0.5)
        column = [j for j, d in enumerate(dims) for _ in range(d)]
        base = [
            start + t for start, d in zip(starts, dims, strict=True) for t in range(d)
        ]
        stride = [dims[j] for j in column]
        self.register_buffer("position_column", torch.tensor(column), False)
        self.register_buffer("position_base", torch.tensor(base), False)
        self.register_buffer("position_stride", torch.tensor(stride), False)

    def column_vectors(self, k: int, codes: torch.Tensor) -> torch.Tensor:
        """The vectors of ``codes`` of categorical column ``k`` (its index
        among the categorical columns): ``(*codes.shape, dim_k)``."""
        table = self.table
        assert table is not None  # called for categorical columns only
        weight = table.weight
        if self.column_dims is None:
            return table(codes + self.offsets[k])
        d = self.column_dims[k]
        steps = torch.arange(d, device=codes.device)
        index = self._column_starts[k] + codes.unsqueeze(-1) * d + steps
        return weight[:, 0][index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Built column-major, as (width, batch): each part is computed
        # feature by feature, the parts join without interleaving, and the
        # gradient of the matrix products that read the output comes back
        # column-major too (torch keeps an input's layout in its gradient).
        parts = []
        if self.numeric_columns.numel():
            numeric = x.t().index_select(0, self.numeric_columns)
            if self.numeric_embedding is not None:
                numeric = _periodic_embedding(self.numeric_embedding, numeric)
            parts.append(numeric)
        if self.table is not None:
            parts.append(self._categorical(x))
        return (torch.cat(parts) if len(parts) > 1 else parts[0]).t()

    def _categorical(self, x: torch.Tensor) -> torch.Tensor:
        """The categorical columns' vectors, ``(categorical width, batch)``."""
        table = self.table
        assert table is not None  # called with categorical columns only
        weight = table.weight
        gather = weight.device.type == "cpu" and torch.is_grad_enabled()
        if self.column_dims is None:
            codes = x.index_select(1, self.categorical_columns).long() + self.offsets
            if gather:
                return _GatherRows.apply(weight, codes).flatten(1).t()
            return table(codes).flatten(1).t()
        # One value per output position: the positions' codes are whole rows
        # and the table a flat vector (an index_select of rows of one value
        # is several times slower).
        codes = x.t().index_select(0, self.categorical_columns).long()
        codes = codes.index_select(0, self.position_column)
        index = torch.addcmul(
            self.position_base.unsqueeze(1), codes, self.position_stride.unsqueeze(1)
        )
        values = weight.view(-1)
        if gather:
            return _GatherRows.apply(values, index)
        return values.index_select(0, index.flatten()).view_as(index)


class _GatherRows(torch.autograd.Function):
    """``weight[index]``, whose gradient sums rows with ``index_add_`` (or,
    for a vector ``weight``, values with ``scatter_add_``).

    The same values as an embedding lookup and its gradient; on CPU the
    embedding's backward takes about twice as long for the few dozen columns
    of a batch (it sorts the indices first).
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.weight_shape = weight.shape
        rows = weight.index_select(0, index.reshape(-1))
        return rows.view(*index.shape, *weight.shape[1:])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        shape = ctx.weight_shape
        grad = grad.reshape(-1, *shape[1:])
        weight_grad = grad.new_zeros(shape)
        if len(shape) == 1:
            return weight_grad.scatter_add_(0, index.reshape(-1), grad), None
        return weight_grad.index_add_(0, index.reshape(-1), grad), None


def _periodic_embedding(
    module: PeriodicEmbeddings, columns: torch.Tensor
) -> torch.Tensor:
    """``module(columns.T).flatten(1).T``: the periodic embeddings of
    ``columns`` ``(n_features, batch)`` as ``(n_features * d_embedding,
    batch)``, computed from the module's parameters.

    Computed column-major (a column's periodic features as ``(2 *
    n_frequencies, batch)``) by :class:`_PeriodicLinear`, whose products
    are several times faster than rtdl's on ``(batch, 2 * n_frequencies)``
    blocks, forward and backward.
    """
    linear = module.linear
    n_features = columns.shape[0]
    if isinstance(linear, nn.Linear):
        # lite: one layer shared by every column.
        weight = linear.weight.t().expand(n_features, -1, -1)
        bias = linear.bias.expand(n_features, -1)
    else:
        weight, bias = linear.weight, linear.bias
    frequencies = 2 * math.pi * module.periodic.weight
    inputs = (columns, frequencies, weight, bias)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        out = _PeriodicLinear.apply(*inputs)
    else:
        out = _PeriodicLinear.linear(
            _PeriodicLinear.features(columns, frequencies), weight, bias
        )
    if module.activation is not None:
        out = module.activation(out)
    return out.flatten(0, 1)


class _PeriodicLinear(torch.autograd.Function):
    """Each column's linear layer on its periodic features, column-major.

    ``columns`` ``(n_features, batch)``, ``frequencies`` ``(n_features, k)``
    (with the factor ``2 pi``), ``weight`` ``(n_features, 2 k, d)`` and
    ``bias`` ``(n_features, d)`` give ``bias + weight.T @ [cos(f x);
    sin(f x)]`` as ``(n_features, d, batch)``.

    The backward reads the saved features and never forms the gradient of
    the ``(n_features, 2 k, batch)`` features: the gradient of a frequency
    is a sum over the batch that folds into the product giving the weight's
    gradient, and that of a column a product of the same size as the
    forward's.
    """

    @staticmethod
    def features(columns: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
        angles = frequencies.unsqueeze(-1) * columns.unsqueeze(1)
        return torch.cat([angles.cos(), angles.sin()], dim=1)

    @staticmethod
    def linear(
        features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        return torch.baddbmm(bias.unsqueeze(-1), weight.transpose(1, 2), features)

    @staticmethod
    def forward(ctx, columns, frequencies, weight, bias):
        features = _PeriodicLinear.features(columns, frequencies)
        ctx.save_for_backward(columns, frequencies, weight, features)
        return _PeriodicLinear.linear(features, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        columns, frequencies, weight, features = ctx.saved_tensors
        k, d = frequencies.shape[1], weight.shape[2]
        # (n, 2k, batch) x (n, batch, 2d): the weight's gradient and, per
        # feature and output, the batch sums of feature * column * grad.
        both = torch.cat([grad, grad * columns.unsqueeze(1)], dim=1)
        sums = torch.bmm(features, both.transpose(1, 2))
        weight_grad, scaled = sums[..., :d], sums[..., d:]
        cos_weight, sin_weight = weight[:, :k], weight[:, k:]
        frequency_grad = (sin_weight * scaled[:, :k]).sum(-1) - (
            cos_weight * scaled[:, k:]
        ).sum(-1)
        column_grad = None
        if ctx.needs_input_grad[0]:
            # d out / d column = sum over the frequencies of f * weight *
            # [-sin; cos]: one product with the saved features.
            rotated = torch.cat([sin_weight, -cos_weight], dim=1)
            rotated = rotated * frequencies.repeat(1, 2).unsqueeze(-1)
            slopes = torch.bmm(rotated.transpose(1, 2), features)
            column_grad = (grad * slopes).sum(1)
        return column_grad, frequency_grad, weight_grad, grad.sum(-1)


def embedding_params(encoder) -> dict:
    """:class:`MMoENetwork` arguments for a fitted categorical encoder (or None)."""
    if encoder is None:
        return {}
    params = {
        "categorical_columns": encoder.columns,
        "cardinalities": encoder.cardinalities,
    }
    sequences = encoder.sequences
    if sequences is not None:
        columns = encoder.columns
        params["sequences"] = {
            "max_length": sequences.max_length,
            "cardinalities": sequences.cardinalities(
                dict(zip(columns, encoder.cardinalities, strict=True))
            ),
            "targets": [
                None if k is None else columns.index(k) for k in sequences.targets
            ],
            "poolings": sequences.poolings(),
        }
    return params


def _sequence_dim(
    cardinality: int,
    target: int | None,
    embedding_dim: int | Sequence[int] | None,
    cardinalities: Sequence[int],
) -> int:
    """The embedding size of a list column: its target's, or its own."""
    if target is None:
        return _rule_of_thumb(cardinality, smallest=2)
    if isinstance(embedding_dim, Sequence):
        return int(embedding_dim[target])
    return int(embedding_dim or embedding_size(cardinalities))


def embedding_sizes(cardinalities: Sequence[int]) -> tuple[int, ...]:
    """An embedding size per column of these cardinalities.

    The rule of thumb of :func:`embedding_size`, ``1.6 n^0.56``, for each
    column's own cardinality ``n``, kept between 2 and 16.
    """
    return tuple(_rule_of_thumb(n, smallest=2) for n in cardinalities)


def embedding_size(cardinalities: Sequence[int]) -> int:
    """The embedding size for columns of these cardinalities.

    A common rule of thumb, ``1.6 n^0.56`` for the largest cardinality ``n``,
    kept between 4 and 16.
    """
    return _rule_of_thumb(max(cardinalities), smallest=4)


def _rule_of_thumb(cardinality: int, smallest: int) -> int:
    """``1.6 n^0.56`` for ``n`` values, kept between ``smallest`` and 16."""
    return int(min(16, max(smallest, round(1.6 * cardinality**0.56))))


def _check_network_arguments(
    output_sizes: list[int],
    n_experts: int,
    n_levels: int,
    expert_hidden_layer_sizes: Sequence[int],
    shared_gate: bool,
    n_task_experts: int,
    gate_k: int,
    gate_temperature: float,
    ensemble_size: int,
    gate: str = "softmax",
) -> None:
    """Refuse the arguments of :class:`MMoENetwork` that build no network."""
    if not output_sizes or min(output_sizes) < 1:
        raise ValueError(
            f"output_sizes must give a positive width per task, got {output_sizes}."
        )
    if n_experts < 1:
        raise ValueError(f"n_experts must be >= 1, got {n_experts}.")
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}.")
    if not expert_hidden_layer_sizes:
        raise ValueError("expert_hidden_layer_sizes must not be empty.")
    if shared_gate and n_task_experts > 0:
        raise ValueError(
            "shared_gate=True (One-gate MoE) cannot be combined with "
            f"n_task_experts={n_task_experts}: task experts need per-task gates."
        )
    if gate_k < 1 or gate_temperature <= 0 or ensemble_size < 1:
        raise ValueError(
            "gate_k and ensemble_size must be >= 1 and gate_temperature > 0, "
            f"got {gate_k}, {ensemble_size} and {gate_temperature}."
        )
    if ensemble_size > MAX_ENSEMBLE_SIZE:
        raise ValueError(
            f"ensemble_size must be <= {MAX_ENSEMBLE_SIZE} (each member "
            f"multiplies the rows of every batch), got {ensemble_size}."
        )
    gate_class(gate).check(
        n_experts + n_task_experts,
        {"gate_k": gate_k, "gate_temperature": gate_temperature},
    )


class MMoENetwork(nn.Module):
    """Multi-gate Mixture-of-Experts network for several tasks.

    ``n_experts`` experts (ReLU MLPs of equal shape) read the input; each task
    ``k`` has a softmax gate ``w_k = softmax(W_k x)`` that mixes the experts
    into ``z_k = sum_i w_ki f_i(x)``, which the task's tower ``h_k`` (a ReLU MLP
    with a linear output layer) turns into the task's outputs: class logits
    for a classification task, a single value for a regression task.

    Parameters
    ----------
    n_features : int
        Number of input features.
    output_sizes : sequence of int
        Output width of each task: its number of classes for a classification
        task, 1 for a regression task.
    n_experts : int, default=4
        Number of shared experts. ``n_experts=1`` (with no task experts) is
        the Shared-Bottom model: the single gate is then constant.
    expert_hidden_layer_sizes : sequence of int, default=(32,)
        Units of each expert layer; the last one is the expert output size.
    tower_hidden_layer_sizes : sequence of int, default=(16,)
        Hidden units of each task tower, before its output layer.
    n_task_experts : int, default=0
        Task-specific experts per task (CGC, Tang et al. 2020). Each task's
        gate mixes the shared experts and its own.
    n_levels : int, default=1
        Number of stacked extraction levels (PLE when > 1). Every level but
        the last has an extra gate over all of its experts that feeds the
        next level's shared experts.
    shared_gate : bool, default=False
        Use one gate for all tasks: the One-gate Mixture-of-Experts (OMoE).
        Requires ``n_task_experts=0``.
    gate_dropout : float, default=0.0
        During training, zero each expert's gate weight with this probability
        and renormalise (Zhao et al. 2019).
    gate : {"softmax", "dselect_k", "noisy_top_k"}, default="softmax"
        The gates: :class:`SoftmaxGate`, :class:`DSelectKGate` or
        :class:`NoisyTopKGate` (a key of :data:`GATES`).
    gate_k : int, default=2
        Experts each DSelect-k or noisy top-k gate selects (ignored by
        softmax gates).
    gate_temperature : float, default=1.0
        Divides the gates' logits.
    expert_activation : {"relu", "silu"}, default="relu"
        Activation of the expert layers.
    expert_normalization : {"layer"} or None, default=None
        Normalise each expert's output (:class:`ExpertNormalization`) before
        its activation.
    ensemble_size : int, default=1
        Members of an efficient ensemble (TabM-mini, Gorishniy et al.,
        2025): each member multiplies the (embedded) input by its own
        vector, initialised with random signs, and has its own output
        layers; everything between is shared and runs on the members' rows
        as one batch. In training the output holds every member's rows
        (``batch * ensemble_size``, sample by sample), each trained on the
        sample's target; at prediction, the members' class probabilities
        (regression outputs) are averaged.
    dropout : float, default=0.0
        Dropout after every hidden layer of experts and towers.
    categorical_columns : sequence of int, default=()
        Input columns that hold categorical codes, embedded by a
        :class:`FeatureEmbedding` before the experts and gates.
    cardinalities : sequence of int, default=()
        Number of codes of each categorical column.
    embedding_dim : int or sequence of int, default=None
        Size of the categorical embeddings, one for all columns or one per
        column (see :class:`FeatureEmbedding`); by default
        :func:`embedding_size` of the cardinalities.
    numeric_scaling : bool, default=False
        Scale and smoothly clip the numeric columns first
        (:class:`NumericScaling`; its statistics are set by the caller).
    numeric_missing : bool, default=False
        Replace missing (NaN) values of the numeric columns by a learned
        fill per column (:class:`~sk_mmoe.nn.missing.MissingFill`), after
        the scaling; without it NaN inputs give NaN outputs.
    numeric_clip : bool, default=True
        With ``numeric_scaling``: clip the scaled columns smoothly.
    numeric_embedding : bool, default=False
        Turn each numeric column into a vector of periodic features
        (:class:`FeatureEmbedding`) before the experts and gates.
    numeric_frequencies : int, default=48
        With ``numeric_embedding``: the number of frequencies of each
        column's periodic features.
    numeric_lite : bool, default=False
        With ``numeric_embedding``: one linear layer after the periodic
        features, shared by all columns, instead of one per column.
    sparse_projection : int, default=None
        Read the input through a :class:`SparseProjection` of this width
        first, which takes sparse CSR batches without densifying them.

    Examples
    --------
    >>> import torch
    >>> from sk_mmoe.nn.network import MMoENetwork
    >>> net = MMoENetwork(n_features=10, output_sizes=[2, 3], n_experts=4)
    >>> logits = net(torch.randn(5, 10))
    >>> tuple(logits.shape)
    (5, 2, 3)
    >>> logits, gates = net(torch.randn(5, 10), return_gates=True)
    >>> tuple(gates.shape)
    (5, 2, 4)
    """

    regression_outputs: torch.Tensor
    class_padding: torch.Tensor

    def __init__(
        self,
        n_features: int,
        output_sizes: Sequence[int],
        n_experts: int = 4,
        expert_hidden_layer_sizes: Sequence[int] = (32,),
        tower_hidden_layer_sizes: Sequence[int] = (16,),
        n_task_experts: int = 0,
        n_levels: int = 1,
        shared_gate: bool = False,
        gate_dropout: float = 0.0,
        dropout: float = 0.0,
        gate: str = "softmax",
        gate_k: int = 2,
        gate_temperature: float = 1.0,
        expert_activation: str = "relu",
        expert_normalization: str | None = None,
        ensemble_size: int = 1,
        categorical_columns: Sequence[int] = (),
        cardinalities: Sequence[int] = (),
        embedding_dim: int | Sequence[int] | None = None,
        numeric_scaling: bool = False,
        numeric_embedding: bool = False,
        sparse_projection: int | None = None,
        numeric_clip: bool = True,
        sequences: dict | None = None,
        numeric_missing: bool = False,
        numeric_frequencies: int = NUMERIC_FREQUENCIES,
        numeric_lite: bool = NUMERIC_LITE,
    ) -> None:
        super().__init__()
        output_sizes = [int(c) for c in output_sizes]
        _check_network_arguments(
            output_sizes,
            n_experts,
            n_levels,
            expert_hidden_layer_sizes,
            shared_gate,
            n_task_experts,
            gate_k,
            gate_temperature,
            ensemble_size,
            gate,
        )
        self.n_features = n_features
        self.output_sizes = output_sizes
        self.n_tasks = len(output_sizes)
        self.gate_dropout = gate_dropout
        self.ensemble_size = int(ensemble_size)
        # The gate weights of the training forward passes, when recording
        # (see record_gates).
        self._gate_record: list[torch.Tensor] | None = None

        in_features = first_in_features = self._build_inputs(
            categorical_columns,
            cardinalities,
            embedding_dim,
            numeric_scaling,
            numeric_embedding,
            sparse_projection,
            numeric_clip,
            sequences,
            numeric_periodic={
                "n_frequencies": numeric_frequencies,
                "lite": numeric_lite,
            },
        )
        # After the scaling, before the embedding (see MissingFill); the
        # columns of X, without the list columns' codes.
        n_columns = n_features - (
            self.sequences.width if self.sequences is not None else 0
        )
        self.missing = (
            MissingFill(n_columns, categorical_columns)
            if numeric_missing and n_columns > len(categorical_columns)
            else None
        )
        levels = []
        for level in range(n_levels):
            levels.append(
                _ExtractionLevel(
                    in_features,
                    self.n_tasks,
                    n_experts,
                    n_task_experts,
                    expert_hidden_layer_sizes,
                    shared_gate=shared_gate,
                    with_shared_gate=level < n_levels - 1,
                    first_level=level == 0,
                    dropout=dropout,
                    gate=gate,
                    gate_k=gate_k,
                    gate_temperature=gate_temperature,
                    expert_activation=expert_activation,
                    expert_normalization=expert_normalization,
                )
            )
            in_features = levels[-1].out_features
        self.levels = nn.ModuleList(levels)
        self.towers = _BatchedMLP(
            self.n_tasks, in_features, tower_hidden_layer_sizes, dropout
        )
        self._build_outputs(first_in_features)

    def _build_inputs(
        self,
        categorical_columns: Sequence[int],
        cardinalities: Sequence[int],
        embedding_dim: int | Sequence[int] | None,
        numeric_scaling: bool,
        numeric_embedding: bool,
        sparse_projection: int | None,
        numeric_clip: bool = True,
        sequences: dict | None = None,
        numeric_periodic: dict | None = None,
    ) -> int:
        """The layers before the experts (scaling, sparse projection,
        embeddings, pooling of list columns); returns the width the first
        level reads. ``numeric_periodic``: the keyword arguments of the
        numeric columns' periodic embedding (:class:`FeatureEmbedding`)."""
        self.sequences = None
        n_features = self.n_features
        if sequences:
            dims = [
                _sequence_dim(n, k, embedding_dim, cardinalities)
                for n, k in zip(
                    sequences["cardinalities"], sequences["targets"], strict=True
                )
            ]
            self.sequences = SequencePooling(
                sequences["max_length"],
                sequences["cardinalities"],
                sequences["targets"],
                sequences["poolings"],
                dims,
            )
            n_features -= self.sequences.width
        self.scaling = (
            NumericScaling(n_features, categorical_columns, numeric_clip)
            if numeric_scaling and n_features > len(categorical_columns)
            else None
        )
        self.embedding = None
        self.projection = None
        in_features = n_features
        if sparse_projection:
            self.projection = SparseProjection(n_features, sparse_projection)
            in_features = sparse_projection
        if len(categorical_columns) or (
            numeric_embedding and n_features > len(categorical_columns)
        ):
            self.embedding = FeatureEmbedding(
                n_features,
                categorical_columns,
                cardinalities,
                embedding_dim,
                numeric_embedding,
                **(numeric_periodic or {}),
            )
            in_features = self.embedding.out_features
        if self.sequences is not None:
            in_features += self.sequences.out_features
        return in_features

    def _build_outputs(self, first_in_features: int) -> None:
        """The ensemble members' input scales, the output layers and the
        buffers that tell regression tasks and class padding apart."""
        output_sizes = self.output_sizes
        width = max(output_sizes)
        self.member_scale = None
        if self.ensemble_size > 1:
            # TabM-mini's adapter: a random-sign scale of the input per member.
            scale = torch.randint(0, 2, (self.ensemble_size, first_in_features))
            self.member_scale = nn.Parameter(scale.float() * 2 - 1)
        # One output layer per task and member (task-major).
        self.tower_outputs = BatchedLinear(
            self.n_tasks * self.ensemble_size, self.towers.out_features, width
        )
        self.register_buffer(
            "regression_outputs",
            torch.tensor([size == 1 for size in output_sizes]).view(-1, 1),
            persistent=False,
        )
        # Tasks narrower than the widest get -inf in the padding, so that one
        # (batch, n_tasks, width) tensor holds all tasks and a softmax over it
        # gives each classification task its own distribution.
        padding = torch.arange(width).unsqueeze(0) >= torch.tensor(
            output_sizes
        ).unsqueeze(1)
        self.register_buffer("class_padding", padding, persistent=False)
        self._has_class_padding = min(output_sizes) < width

    @property
    def n_gate_experts(self) -> int:
        """Number of experts a gate of the last level distributes weight over."""
        return cast(_ExtractionLevel, self.levels[-1]).n_total_experts

    def forward(
        self, x: torch.Tensor, return_gates: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Outputs of every task.

        Parameters
        ----------
        x : Tensor of shape (batch, n_features)
            Input features.
        return_gates : bool, default=False
            Also return the last level's gate weights.

        Returns
        -------
        outputs : Tensor of shape (batch, n_tasks, max(output_sizes))
            Class logits of classification tasks, the prediction in column 0
            of regression tasks; ``-inf`` in the padding of narrower tasks.
            With ``ensemble_size > 1`` in training mode, ``batch *
            ensemble_size`` rows: every member's outputs for sample 0, then
            for sample 1...
        gates : Tensor of shape (batch, n_tasks, n_gate_experts)
            Gate weights (only if ``return_gates``), averaged over the
            ensemble's members.
        """
        pooled = None
        if self.sequences is not None:
            x, pooled = self._pool_sequences(x)
        # Networks pickled before missing values were learned lack it.
        fill = getattr(self, "missing", None)
        missing = None if fill is None else torch.isnan(x)
        if self.projection is not None:
            x = self.projection(x)
        if self.scaling is not None:
            x = self.scaling(x)
        untouched = False
        if fill is not None:
            filled = fill(x, missing)
            untouched, x = filled is x, filled
        if self.embedding is not None:
            x = self.embedding(x)
        if pooled is not None:
            x = torch.cat([x, pooled], dim=1)
        k = self.ensemble_size
        if self.member_scale is not None:
            # (batch, d) -> (batch * k, d): each sample once per member.
            x = (x.unsqueeze(1) * self.member_scale).flatten(0, 1)
        task_inputs = x
        shared_input = x
        weights = None
        record = self._gate_record if self.training else None
        for level in self.levels:
            task_inputs, shared_out, weights = level(
                task_inputs, shared_input, self.gate_dropout, record
            )
            if shared_out is not None:
                shared_input = shared_out
        hidden = self.towers(task_inputs)
        if k == 1:
            logits = self.tower_outputs(hidden).transpose(0, 1)
        else:
            logits = self._member_outputs(hidden)
        if self._has_class_padding:
            logits = logits.masked_fill(self.class_padding, float("-inf"))
        if untouched:
            # No missing value in this training batch (see MissingFill).
            assert fill is not None
            logits = fill.zero_gradient(logits)
        if return_gates:
            assert weights is not None  # there is at least one level
            if k > 1:
                weights = weights.unflatten(1, (-1, k)).mean(dim=2)
            return logits, weights.transpose(0, 1)
        return logits

    def _pool_sequences(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The columns of ``X`` and the pooled vectors of its list columns."""
        columns, inputs = self._sequence_inputs(x)
        sequences = self.sequences
        assert sequences is not None  # called with list columns only
        return columns, sequences(*inputs)

    def _sequence_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """The columns of ``X``, and what :attr:`sequences` reads: the codes
        of the list columns, those of the categorical columns (the
        candidates) and the lookup of their table."""
        sequences = self.sequences
        assert sequences is not None  # called with list columns only
        n_columns = self.n_features - sequences.width
        columns, codes = x[:, :n_columns], x[:, n_columns:]
        candidates, shared = None, None
        if self.embedding is not None and self.embedding.table is not None:
            candidates = columns.index_select(1, self.embedding.categorical_columns)
            shared = self.embedding.column_vectors
        return columns, (codes, candidates, shared)

    def attention_weights(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The target attention's weights over each attention-pooled list
        column's values, by the column's index among the list columns
        (``(batch, max_length)`` each; see
        :meth:`SequencePooling.attention_weights`)."""
        if self.sequences is None:
            return {}
        return self.sequences.attention_weights(*self._sequence_inputs(x)[1])

    def _member_outputs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Every member's output layer on ``(n_tasks, batch * k, h)``.

        In training, every member's outputs (``(batch * k, n_tasks, width)``);
        else their combination (``(batch, n_tasks, width)``): the log of the
        mean class probabilities, the mean regression output.
        """
        n_tasks, k = self.n_tasks, self.ensemble_size
        # (tasks, batch * k, h) -> (tasks * k, batch, h), task-major.
        hidden = hidden.unflatten(1, (-1, k)).transpose(1, 2).flatten(0, 1)
        out = self.tower_outputs(hidden).unflatten(0, (n_tasks, k))
        if self.training:
            # (tasks, k, batch, width) -> (batch * k, tasks, width).
            return out.permute(2, 1, 0, 3).flatten(0, 1)
        padding = self.class_padding.view(n_tasks, 1, 1, -1)
        log_proba = torch.log_softmax(out.masked_fill(padding, float("-inf")), -1)
        mean_proba = torch.logsumexp(log_proba, dim=1) - math.log(k)
        combined = torch.where(
            self.regression_outputs.view(n_tasks, 1, 1), out.mean(dim=1), mean_proba
        )
        return combined.transpose(0, 1)

    def record_gates(self, record: bool) -> None:
        """Start (or stop) keeping the gate weights of training forward passes.

        While recording, each forward pass in training mode keeps the
        weights of every gate of every level, which :meth:`pop_gate_weights`
        hands over (and forgets): the training loss turns them into the
        balance penalty (:func:`gate_balance_penalty`). Off by default: a
        training loop that does not pop them would keep every step's graph
        alive.
        """
        self._gate_record = [] if record else None

    def pop_gate_weights(self) -> list[torch.Tensor]:
        """The gate weights recorded since the last call, then forgotten
        (empty when not recording): each ``(n_gates, batch, n_experts)``."""
        record = self._gate_record or []
        if self._gate_record is not None:
            self._gate_record = []
        return record

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters of the expert levels, which every task's loss
        reaches (what a gradient-balancing weighting balances)."""
        return list(self.levels.parameters())
