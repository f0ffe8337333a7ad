"""Seeded, deterministic Lightning training with early stopping; keeps the best weights."""

from __future__ import annotations

import copy
import logging
import warnings

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, TQDMProgressBar
from torch.utils.data import DataLoader, TensorDataset

from training.model import RecurrentForecaster
from training.settings import TrainSettings
from training.splits import Splits


class KeepBestWeights(Callback):
    """Restore the weights of the best validation epoch at the end (no checkpoint files)."""

    def __init__(self) -> None:
        self.best = float("inf")
        self.state: dict | None = None
        self.epoch = -1

    def on_validation_epoch_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        loss = float(trainer.callback_metrics["val_loss"])
        if loss < self.best:
            self.best, self.epoch = loss, trainer.current_epoch
            self.state = copy.deepcopy(module.state_dict())

    def on_fit_end(self, trainer, module) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)


def _loader(x: np.ndarray, y: np.ndarray, batch: int, shuffle: bool, seed: int) -> DataLoader:
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch, shuffle=shuffle, generator=generator)


def fit(splits: Splits, settings: TrainSettings, logger=None) -> tuple[RecurrentForecaster, dict]:
    """Train on `splits.train`, early-stop on `splits.validation`; returns model and a summary."""
    torch.set_num_threads(settings.threads)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    module = RecurrentForecaster(
        settings.architecture, settings.hidden, settings.layers, settings.dropout, settings.learning_rate
    )
    best = KeepBestWeights()
    trainer = L.Trainer(
        max_epochs=settings.max_epochs,
        accelerator="cpu",
        deterministic=True,
        logger=logger if logger is not None else False,
        callbacks=[
            EarlyStopping("val_loss", patience=settings.patience),
            best,
            TQDMProgressBar(refresh_rate=20),
        ],
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    x_tr, y_tr = splits.train.features(splits.spec)
    x_va, y_va = splits.validation.features(splits.spec)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        trainer.fit(
            module,
            _loader(x_tr, y_tr, settings.batch_size, True, settings.seed),
            _loader(x_va, y_va, 1024, False, settings.seed),
        )
    module.eval()
    return module, {
        "epochs_run": trainer.current_epoch,
        "best_epoch": best.epoch,
        "best_val_loss": best.best,
    }


def predict_scaled(module: RecurrentForecaster, features: np.ndarray) -> np.ndarray:
    """Torch eager inference in model space (used for parity and test forecasts)."""
    with torch.no_grad():
        return module(torch.from_numpy(features)).squeeze(-1).numpy()
