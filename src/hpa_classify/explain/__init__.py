"""Why a run predicts what it does: class activation maps (Grad-CAM) and image embeddings."""

from hpa_classify.explain.cam import grad_cam, load_batch, pooled_features
from hpa_classify.explain.embed import embed_dataset, nearest, neighbours_sheet
from hpa_classify.explain.page import explain_run

__all__ = ["embed_dataset", "explain_run", "grad_cam", "load_batch", "nearest", "neighbours_sheet", "pooled_features"]
