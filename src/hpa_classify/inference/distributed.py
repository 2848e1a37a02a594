"""Several processes, one job: which process writes, and prediction sharded across devices.

Training runs on Lightning's DDP (``hpa train --devices N --num-nodes M``);
Lightning starts the processes of one machine itself, or finds those that
``torchrun`` or SLURM's ``srun`` started. Everything a run writes is written
by global rank 0 only; :func:`is_global_zero` tells, before the Trainer
exists, whether this process is that one, the way Lightning will decide it.

Prediction (``hpa predict --devices N``) gives each process a contiguous
slice of the samples; rank 0 gathers the slices back in input order
(:func:`sharded`).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable

import numpy as np
import torch
from lightning.fabric import Fabric
from lightning.fabric.plugins.environments import (
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)

from hpa_classify.classes import NUM_CLASSES
from hpa_classify.data.layout import Dataset

log = logging.getLogger(__name__)


def is_global_zero() -> bool:
    """Whether this process is global rank 0, the only one of a run that writes files.

    Told from the environment of the launcher that started the process, as
    Lightning will tell it: the cluster environments in Lightning's order
    (torchrun, SLURM, LSF, MPI) give the global rank; otherwise Lightning's
    own launcher sets ``NODE_RANK`` and ``LOCAL_RANK``, and a process with
    neither is rank 0.
    """
    for env_type in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment):
        if env_type.detect():
            return int(env_type().global_rank()) == 0
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
    return node == 0 and int(os.environ.get("LOCAL_RANK", 0)) == 0


def wants_distributed(devices: int | str, num_nodes: int) -> bool:
    """Whether ``devices`` x ``num_nodes`` asks for more than one process."""
    if num_nodes > 1:
        return True
    if isinstance(devices, str):
        return devices.strip() not in ("1", "auto") and devices.strip() != ""
    return devices > 1


def sharded(
    predict: Callable[[Dataset], np.ndarray],
    data: Dataset,
    devices: int | str,
    num_nodes: int = 1,
    accelerator: str = "auto",
) -> np.ndarray | None:
    """Run ``predict`` (a subset of ``data`` -> ``(n, 28)`` probabilities) with one process per device.

    Starts (or joins, under torchrun or SLURM) a Lightning Fabric DDP job of
    ``devices`` x ``num_nodes`` processes; each process's default device is
    its own. Process ``r`` of ``W`` predicts the contiguous slice ``r`` of
    ``data`` cut in ``W``; the slices are padded to one length, all-gathered
    and cut back to ``len(data)``, in input order. Global rank 0 returns the
    ``(len(data), NUM_CLASSES)`` probabilities, the other ranks None.
    """
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp")
    fabric.launch()
    rank, world = fabric.global_rank, fabric.world_size
    n = len(data)
    per = math.ceil(n / world)
    lo, hi = min(rank * per, n), min((rank + 1) * per, n)
    log.info("rank %d of %d predicts samples %d to %d", rank, world, lo, hi)
    probs = predict(data.subset(range(lo, hi)))
    padded = torch.zeros(per, NUM_CLASSES, dtype=torch.float32)
    padded[: hi - lo] = torch.from_numpy(np.asarray(probs, np.float32))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*")
        gathered = fabric.all_gather(padded.to(fabric.device))  # (world, per, 28)
    fabric.barrier()
    if rank != 0:
        return None
    return gathered.reshape(-1, NUM_CLASSES)[:n].cpu().numpy()
