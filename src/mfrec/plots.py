"""Figures (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_history(
    history: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    title: str = "",
    val_label: str = "validation RMSE",
) -> None:
    """Training (and validation) RMSE and training loss per epoch, saved as a PNG."""
    if not history:
        raise ValueError("the model has no training history to plot (was it fitted?)")
    plt = _pyplot()
    epochs = [rec["epoch"] for rec in history]
    fig, (ax_rmse, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    from matplotlib.ticker import MaxNLocator

    for key, label in (("train_rmse", "train RMSE"), ("val_rmse", val_label)):
        values = [rec.get(key) for rec in history]
        if any(v is not None for v in values):
            ax_rmse.plot(epochs, values, marker=".", label=label)
    for ax in (ax_rmse, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_rmse.set_xlabel("epoch")
    ax_rmse.set_ylabel("RMSE")
    ax_rmse.legend()
    ax_rmse.grid(alpha=0.3)
    losses = [rec.get("train_loss") for rec in history]
    if any(v is not None for v in losses):
        ax_loss.plot(epochs, losses, marker=".", color="tab:green")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (regularised, per rating)")
    ax_loss.grid(alpha=0.3)
    fig.suptitle(title or "training history")
    fig.tight_layout()
    _save(fig, path)


def plot_error_histogram(
    truth: np.ndarray, predicted: np.ndarray, path: str | os.PathLike[str], title: str = ""
) -> None:
    """Histogram of prediction errors (predicted - true), saved as a PNG."""
    plt = _pyplot()
    errors = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(errors, bins=60, color="tab:blue", alpha=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    rmse = float(np.sqrt(np.mean(errors**2)))
    ax.set_xlabel("prediction error (predicted - true rating)")
    ax.set_ylabel("test ratings")
    ax.set_title(title or f"error histogram (RMSE {rmse:.4f}, n={errors.size:,})")
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str | os.PathLike[str]) -> None:
    from mfrec._atomic import atomic_write

    plt = _pyplot()
    try:
        with atomic_write(path) as handle:
            fig.savefig(handle, format="png", dpi=100)
    finally:
        plt.close(fig)
