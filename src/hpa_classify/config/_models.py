"""The pydantic models of a config: every key, its default and its range."""

from __future__ import annotations

import math
import re
import typing
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hpa_classify.classes import CHANNELS, DEFAULT_MEAN, DEFAULT_STD
from hpa_classify.errors import brief

#: Largest seed (NumPy and PyTorch seeds are 32-bit).
MAX_SEED = 2**32 - 1

#: Losses ``train.loss`` may name (see :mod:`hpa_classify.train.losses`).
LOSS_NAMES = ("bce", "focal", "lovasz", "soft_f1")


def loss_terms(spec: str | dict[str, float]) -> dict[str, float]:
    """The losses and weights of a ``train.loss`` value.

    A name, names joined by ``+`` (weight 1 each) or a mapping name -> weight.

    >>> loss_terms("focal+lovasz")
    {'focal': 1.0, 'lovasz': 1.0}
    >>> loss_terms({"focal": 1, "lovasz": 0.5})
    {'focal': 1.0, 'lovasz': 0.5}
    >>> loss_terms("focal+dice")
    Traceback (most recent call last):
    ...
    ValueError: unknown loss 'dice' (bce, focal, lovasz, soft_f1)
    """
    if isinstance(spec, str):
        names = [n.strip() for n in spec.split("+")]
        if any(not n for n in names):
            raise ValueError(f"{brief(spec)} has an empty term; write e.g. focal+lovasz")
        if len(set(names)) != len(names):
            raise ValueError(f"{brief(spec)} names a loss twice")
        terms = {n: 1.0 for n in names}
    elif isinstance(spec, dict):
        if not spec:
            raise ValueError("the mapping of losses to weights is empty")
        terms = {}
        for name, weight in spec.items():
            if (
                isinstance(weight, bool)
                or not isinstance(weight, (int, float))
                or not 0 < weight < math.inf
            ):
                raise ValueError(f"the weight of {brief(name)} must be a finite number > 0, got {brief(weight)}")
            terms[str(name)] = float(weight)
    else:
        raise ValueError(f"must be a loss name or a mapping of losses to weights, got {brief(spec)}")
    for name in terms:
        if name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {brief(name)} ({', '.join(LOSS_NAMES)})")
    return terms


def _allows_bool(annotation: object) -> bool:
    if annotation is bool:
        return True
    return any(_allows_bool(a) for a in typing.get_args(annotation))


class _Strict(BaseModel):
    # allow_inf_nan=False: every float of every section must be finite
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, v: object, info: ValidationInfo) -> object:
        # pydantic reads true as 1 for a number; YAML's yes/no/on/off make that an easy slip
        field = cls.model_fields.get(info.field_name or "")
        if field is None or _allows_bool(field.annotation):
            return v
        values = v if isinstance(v, (list, tuple)) else [v]
        if any(isinstance(x, bool) for x in values):
            raise ValueError("a boolean (true/false, yes/no, on/off) is not accepted here")
        return v


class DataConfig(_Strict):
    """How samples are read and batched."""

    size: int = Field(512, ge=32, le=4096, description="side of the square model input, px")
    crop: int | None = Field(
        None,
        ge=16,
        le=4096,
        description="train on random crops of this side from the image resized to data.size; "
        "validate and predict on the whole image (none: no crop)",
    )
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    batch_size: int = Field(32, ge=1, le=65536)
    num_workers: Annotated[int, Field(ge=0, le=1024)] | Literal["auto"] = Field(
        "auto", description="data-loading processes per training process; auto: the cores of this machine "
        "shared among the processes that run on it (half of that for validation)")
    mean: tuple[float, float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float, float] = DEFAULT_STD
    skip_invalid: bool = False
    channels: tuple[Literal["red", "green", "blue", "yellow"], ...] = Field(
        CHANNELS,  # type: ignore[arg-type]
        description="channels fed to the model, by name; e.g. [red, green, blue] drops yellow",
    )

    channel_map: dict[Literal["red", "green", "blue", "yellow"], int] | None = Field(
        None,
        description="which plane of a multi-channel TIFF holds which channel, e.g. "
        "{red: 0, green: 1, blue: 2, yellow: 3} (none: OME channel names, else plane order)",
    )
    intensity: str = Field(
        "auto",
        max_length=100,
        description="how images of more than 8 bits become 8: auto (declared depth, else the "
        "container's), bits:12, range:0,4095 or percentile:0.1,99.9 (per channel, measured once per dataset)",
    )

    @field_validator("channel_map")
    @classmethod
    def _planes(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is None:
            return v
        if "green" not in v:
            raise ValueError("the map must name the green (protein) channel")
        if any(not 0 <= i < 64 for i in v.values()) or len(set(v.values())) != len(v):
            raise ValueError(f"planes are distinct numbers 0-63, got {v}")
        return v

    @field_validator("intensity")
    @classmethod
    def _intensity_spec(cls, v: str) -> str:
        number = r"\s*-?\d+(\.\d+)?\s*"
        if not re.fullmatch(rf"\s*(auto|bits:\s*\d+\s*|(range|percentile):{number},{number})", v, re.IGNORECASE):
            raise ValueError("expected auto, bits:N, range:LOW,HIGH or percentile:LOW,HIGH")
        return v.strip()

    @field_validator("channels")
    @classmethod
    def _distinct_channels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one channel is needed")
        if len(set(v)) != len(v):
            raise ValueError(f"each channel at most once, got {list(v)}")
        return v

    @field_validator("crop")
    @classmethod
    def _crop_fits(cls, v: int | None, info: ValidationInfo) -> int | None:
        size = info.data.get("size")
        if v is not None and size is not None and v > size:
            raise ValueError(f"crop {v} is larger than data.size {size}")
        return v

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(s <= 0 for s in v):
            raise ValueError("every std must be > 0")
        return v


class AugmentConfig(_Strict):
    """Training-time augmentations (albumentations), all on 4 channels."""

    enabled: bool = True
    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    crop_scale: tuple[float, float] = (0.7, 1.0)
    brightness_contrast: float = Field(0.15, ge=0.0, le=1.0)

    @field_validator("crop_scale")
    @classmethod
    def _scale_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < v[0] <= v[1] <= 1.0:
            raise ValueError("crop_scale must satisfy 0 < low <= high <= 1")
        return v


class ModelConfig(_Strict):
    """Backbone and where its pretrained weights come from."""

    name: str = Field("tf_efficientnet_lite0", min_length=1, max_length=200)
    pretrained: str = Field(
        "auto",
        min_length=1,
        max_length=4096,
        description="none | auto | timm | bundled | path to a checkpoint",
    )
    drop_rate: float = Field(0.2, ge=0.0, lt=1.0)
    fourth_channel_init: Literal["red", "green", "blue", "mean", "zero"] = "red"
    global_pool: Literal["avg", "max", "avgmax", "catavgmax"] | None = Field(
        None,
        description="timm global pooling; catavgmax concatenates average and max pooling "
        "(none: the architecture's default)",
    )


class TrainConfig(_Strict):
    """Optimisation and hardware."""

    epochs: int = Field(10, ge=1, le=100_000)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: float = Field(1.0, ge=0, le=100_000)
    scheduler: Literal["cosine", "onecycle", "none"] = "cosine"
    loss: str | dict[str, float] = Field(
        "bce",
        description="bce | focal | lovasz | soft_f1, a sum like focal+lovasz, or {focal: 1.0, lovasz: 0.5}",
    )
    focal_gamma: float = Field(2.0, ge=0, le=100)
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    accelerator: str = Field("auto", min_length=1, max_length=64)
    devices: int | str = Field(
        1, description="devices per machine: a count >= 1, 'auto', or device indices like '0,1'"
    )
    num_nodes: int = Field(
        1, ge=1, le=100_000, description="machines of a distributed run (torchrun or SLURM start the processes)"
    )
    channels_last: bool = True
    compile: bool = False
    compile_backend: Literal["inductor", "aot_eager", "eager"] = Field(
        "inductor", description="backend of train.compile: inductor (fast kernels), or aot_eager / eager "
        "to tell a compiler problem from a model problem")
    tf32: bool = Field(True, description="TensorFloat-32 matrix products on Ampere and newer GPUs")
    deterministic: bool = False
    logger: Literal["csv", "tensorboard", "mlflow"] = Field(
        "csv", description="training curves: metrics.csv alone (csv), or also RUN/tensorboard/ (tensorboard) "
        "or a local MLflow store in RUN/mlruns/ (mlflow)")
    limit_train_batches: float | int | None = Field(
        None, description="batches per epoch: a count >= 1 (int) or a fraction in (0, 1] (float)"
    )

    @field_validator("devices")
    @classmethod
    def _device_spec(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if not 1 <= v <= 4096:
                raise ValueError(f"a device count must be 1-4096 ('auto' for all devices), got {v}")
            return v
        text = v.strip()
        if text == "auto" or (text.isdigit() and 1 <= int(text) <= 4096):
            return text
        if _DEVICE_LIST.fullmatch(text):
            indices = [int(i) for i in text.split(",") if i.strip()]
            if len(set(indices)) == len(indices) and all(i < 4096 for i in indices):
                return text
        raise ValueError(f"expected a count >= 1, 'auto' or device indices like '0,1', got {brief(v)}")

    @field_validator("limit_train_batches")
    @classmethod
    def _batch_limit(cls, v: float | int | None) -> float | int | None:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"a count of batches must be >= 1, got {v}")
        if isinstance(v, float) and not 0.0 < v <= 1.0:
            raise ValueError(f"a fraction of the batches must be in (0, 1], got {v} (write an int for a count)")
        return v

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, v: object) -> object:
        # `--set train.precision=32` reads 32 as a number; the key takes it as "32".
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("loss")
    @classmethod
    def _known_losses(cls, v: str | dict[str, float]) -> str | dict[str, float]:
        loss_terms(v)
        return v


_DEVICE_LIST = re.compile(r"\d+(\s*,\s*\d+)*\s*,?")


class EvaluateConfig(_Strict):
    """How probabilities become labels."""

    threshold_method: Literal["search", "prior", "fixed"] = "search"
    fixed_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    pr_figures: bool = Field(
        True,
        description="figures drawn from labels and probabilities in reports: per-class precision-recall, "
        "label counts and example images (slow on a CPU); the class-F1 and training-curve figures stay",
    )


class PredictConfig(_Strict):
    tta: int = Field(4, ge=1, le=8)
    batch_size: int = Field(64, ge=1, le=65536)


#: A run's name: the default folder ``runs/<name>``, so a name and never a path (no separator,
#: no ``..``, no leading dot).
RUN_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.+=-]*$"


class Config(_Strict):
    """A whole experiment."""

    name: str = Field("experiment", min_length=1, max_length=200)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    predict: PredictConfig = PredictConfig()

    @field_validator("name")
    @classmethod
    def _a_name_not_a_path(cls, v: str) -> str:
        if not re.fullmatch(RUN_NAME_PATTERN, v):
            raise ValueError("a run name is a name, not a path: letters, digits and . _ + = - "
                             "(no / or \\, not starting with a dot)")
        return v
