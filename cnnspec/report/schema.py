"""The JSON contract of ``summary --format json`` and ``check --format json``.

These pydantic models document and validate the machine-readable output; tools that
consume cnnspec's JSON can import them (or export ``SummaryReport.model_json_schema()``).
The CLI itself writes the JSON with the standard library, so the fast paths never pay
for importing pydantic; the test suite validates real output against these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Note(_Strict):
    message: str
    location: str


class DiagnosticReport(_Strict):
    code: str
    severity: Literal["error", "warning"]
    message: str
    file: str
    line: NonNegativeInt
    col: NonNegativeInt
    end_line: NonNegativeInt
    end_col: NonNegativeInt
    label: str
    hints: list[str]
    notes: list[Note]


class CheckReport(_Strict):
    diagnostics: list[DiagnosticReport]


class Input(_Strict):
    node: str
    shape: list[PositiveInt]


class LayerRow(_Strict):
    name: str = Field(description="hierarchical node name, e.g. layer2.0.conv1")
    op: str = Field(description="the layer type, or `block` for a collapsed row")
    label: str = Field(
        description="key arguments, e.g. `7x7/2 p3, 64`; a collapsed row's scope in words"
    )
    block: str | None = Field(
        default=None, description="a collapsed block instance's block name, e.g. `basic`"
    )
    args: dict[str, Any] = Field(
        description="the resolved arguments (sizes per dimension); a collapsed block "
        "instance's parameters; a collapsed repeat's `count`"
    )
    inputs: list[Input] = Field(description="the tensors flowing in, with their shapes")
    input_shape: list[PositiveInt] = Field(
        description="the first input's shape (empty for an input node)"
    )
    output_shape: list[PositiveInt] = Field(
        description="C, H, W (C, L; C, D, H, W; or features); no batch"
    )
    params: NonNegativeInt
    macs: NonNegativeInt
    receptive_field: list[PositiveInt] = Field(
        min_length=1, max_length=3, description="per position dimension: H, W (L; D, H, W)"
    )
    jump: list[PositiveInt] = Field(min_length=1, max_length=3)
    training_only: bool
    saved_bytes: NonNegativeInt | None = Field(
        default=None,
        description="with --train: bytes its nodes save for the backward pass (a tensor "
        "several save counts at the first)",
    )


class Output(_Strict):
    node: str
    shape: list[PositiveInt]


class AuxOutput(_Strict):
    name: str
    node: str
    weight: float
    shape: list[PositiveInt]


class Memory(_Strict):
    """`summary --train`: one training step at `batch`, and the inference peak."""

    batch: PositiveInt
    optimizer: Literal["sgd", "adam", "adamw"]
    precision: Literal["fp32", "bf16", "fp16"]
    device: Literal["cuda", "cpu"]
    params_bytes: NonNegativeInt = Field(description="fp32 (autocast keeps fp32 weights)")
    buffers_bytes: NonNegativeInt
    grads_bytes: NonNegativeInt
    optimizer_bytes: NonNegativeInt = Field(description="sgd: momentum; adam(w): 2 moments")
    saved_activations_bytes: NonNegativeInt = Field(
        description="what autograd saves for backward, each tensor once"
    )
    train_total_bytes: NonNegativeInt = Field(
        description="params + buffers + grads + optimizer + saved activations"
    )
    inference_peak_bytes: NonNegativeInt = Field(
        description="the most activation bytes alive at once in a forward without grad"
    )


class SummaryReport(_Strict):
    network: str
    file: str
    params: dict[str, Any] = Field(description="the network parameters after --set")
    inputs: dict[str, list[PositiveInt]]
    outputs: list[Output]
    aux_outputs: list[AuxOutput]
    batch: PositiveInt
    total_params: NonNegativeInt = Field(description="training_params")
    training_params: NonNegativeInt = Field(description="training-only heads included")
    inference_params: NonNegativeInt = Field(description="training-only heads dropped")
    trainable_params: NonNegativeInt
    non_trainable_params: NonNegativeInt
    total_buffers: NonNegativeInt
    total_macs: NonNegativeInt = Field(description="inference: training-only heads excluded")
    training_macs: NonNegativeInt
    total_flops: NonNegativeInt = Field(description="2 x total_macs")
    param_bytes: NonNegativeInt
    input_bytes: NonNegativeInt
    activation_bytes: NonNegativeInt
    layers: list[LayerRow]
    memory: Memory | None = Field(default=None, description="with --train")
    warnings: list[DiagnosticReport]
