"""Backbones (timm) grown to 4 input channels, and where their weights come from."""

from hpa_classify.models.factory import build_model

__all__ = ["build_model"]
