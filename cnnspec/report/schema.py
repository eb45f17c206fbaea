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


class LayerRow(_Strict):
    name: str = Field(description="hierarchical node name, e.g. layer2.0.conv1")
    op: str = Field(description="the layer type, or `block` for a collapsed row")
    label: str = Field(description="key arguments, e.g. `7x7/2, 64`, or the block call")
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


class Output(_Strict):
    node: str
    shape: list[PositiveInt]


class AuxOutput(_Strict):
    name: str
    node: str
    weight: float
    shape: list[PositiveInt]


class SummaryReport(_Strict):
    network: str
    file: str
    params: dict[str, Any] = Field(description="the network parameters after --set")
    inputs: dict[str, list[PositiveInt]]
    outputs: list[Output]
    aux_outputs: list[AuxOutput]
    batch: PositiveInt
    total_params: NonNegativeInt
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
    warnings: list[DiagnosticReport]
