"""The JSON the API answers with, as pydantic models (they also make the OpenAPI schema at ``/docs``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ClassResult(BaseModel):
    """One class for one image: probability, threshold, and whether it is predicted."""

    id: int = Field(description="class id (Kaggle 2018 Target numbering)")
    name: str = Field(description="localisation, e.g. 'Nucleoplasm'")
    probability: float
    threshold: float = Field(description="the run's threshold for this class")
    predicted: bool = Field(description="probability >= threshold, or the top-1 fallback")


class ImageSize(BaseModel):
    width: int = Field(description="width of the uploaded channels, px")
    height: int = Field(description="height of the uploaded channels, px")


class ActivationMap(BaseModel):
    """Reserved: a class activation map, drawn over the composite."""

    class_id: int
    name: str
    image: str = Field(description="PNG data URL, same aspect as the composite")


class CellOutlines(BaseModel):
    """Reserved: the outlines of the segmented cells, drawn over the composite."""

    count: int
    outline: str = Field(description="PNG data URL with a transparent background, same size as the composite")


class Prediction(BaseModel):
    """The result for one field of view."""

    id: str | None = Field(None, description="the sample's name in a batch request")
    labels: list[int] = Field(description="predicted class ids")
    names: list[str] = Field(description="predicted class names")
    target: str = Field(description="the labels as a Kaggle Target string, e.g. '0 25'")
    fallback: bool = Field(description="no class reached its threshold: the most probable one was taken")
    classes: list[ClassResult] = Field(description="all 28 classes, in id order")
    image: ImageSize
    composite: str | None = Field(None, description="RGB composite as a PNG data URL (with ?composite=true)")
    activation_maps: list[ActivationMap] | None = Field(None, description="reserved for class activation maps")
    cells: CellOutlines | None = Field(None, description="reserved for cell outlines")


class BatchPrediction(BaseModel):
    results: list[Prediction]


class ModelClass(BaseModel):
    id: int
    name: str
    threshold: float


class ModelInput(BaseModel):
    size: int = Field(description="side the channels are resized to, px")
    channels: list[str] = Field(description="the network's input channels, in order")
    tta: int = Field(description="test-time augmentation views averaged")


class UploadRules(BaseModel):
    channel_files: list[str]
    formats: list[str]
    multichannel_file: bool = Field(description="whether one file holding all channels is read")
    max_request_bytes: int
    max_pixels: int = Field(description="largest image per channel, px")
    max_batch_images: int


class ModelInfo(BaseModel):
    run: str = Field(description="the run directory's name")
    model: str
    n_models: int = Field(description="networks averaged (the folds of a K-fold run)")
    backend: str
    device: str
    input: ModelInput
    classes: list[ModelClass]
    thresholds: dict[str, str]
    versions: dict[str, str]
    uploads: UploadRules
    token_required: bool


class Health(BaseModel):
    status: str


class ErrorBody(BaseModel):
    detail: str = Field(description="what was wrong, in the words of the command line's errors")
