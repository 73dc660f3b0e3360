"""The paper's reliability score, paired (``shared/docs/oracle.md``).

``tau[j]`` = mean over images of ``||out[:, :, j] - in[:, :, j]||_2 / h`` (column ``j``, all
channels and rows); the trend ``tau_method - tau_allchange`` removes the position bias
(an all-change run with the same noise and seed); ``R`` = Pearson correlation of the trend
with the column index. Everything here works on per-image column norms ``[N, W]`` so the
bootstrap over images is a weighted mean.
"""

from __future__ import annotations

import numpy as np
import torch


def horizontal_gradient(height: int, width: int) -> np.ndarray:
    """Keep (0) at the left edge to full change (1) at the right, pixel-centre sampled."""
    row = (np.arange(width, dtype=np.float32) + 0.5) / width
    return np.repeat(row[None, :], height, axis=0)


def column_norms(output: torch.Tensor, init: torch.Tensor) -> np.ndarray:
    """Per image and column: ``||output - init||_2`` over channels and rows, divided by ``h``."""
    diff = (output - init).to(torch.float64)
    return (diff.pow(2).sum(dim=(1, 2)).sqrt() / diff.shape[2]).numpy()


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis (broadcasting)."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    return (a * b).sum(axis=-1) / np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))


def trend(norms: np.ndarray, allchange: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Normalised trend ``tau - tau_allchange``; ``weights`` ``[B, N]`` gives B resamples."""
    if weights is None:
        return norms.mean(axis=0) - allchange.mean(axis=0)
    return (weights @ (norms - allchange)) / weights.sum(axis=1, keepdims=True)


def reliability(norms: np.ndarray, allchange: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``R``: correlation of the normalised trend with the column index."""
    curve = trend(norms, allchange, weights)
    return pearson(curve, np.arange(curve.shape[-1], dtype=np.float64))


def bootstrap_weights(count: int, resamples: int, seed: int) -> np.ndarray:
    """Multinomial resampling of ``count`` images, as weights ``[resamples, count]``."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, count, size=(resamples, count))
    weights = np.zeros((resamples, count))
    np.add.at(weights, (np.arange(resamples)[:, None], picks), 1.0)
    return weights


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap samples."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)
