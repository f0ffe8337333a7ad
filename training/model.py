"""The seed's stacked recurrent network as a LightningModule; the cell is chosen by name."""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch import nn

Architecture = Literal["lstm", "gru"]
CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU}


class StackedRNN(nn.Module):
    """`[batch, steps, 1]` -> `[batch, 1]`: stacked LSTM or GRU, Linear head on the last step."""

    def __init__(
        self, architecture: Architecture = "lstm", hidden: int = 50, layers: int = 2, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.rnn = CELLS[architecture](
            input_size=1,
            hidden_size=hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1, :])


class RecurrentForecaster(L.LightningModule):
    """MSE on the scaled target; Adam; logs train/val loss per epoch (to MLflow via the logger)."""

    def __init__(
        self,
        architecture: Architecture = "lstm",
        hidden: int = 50,
        layers: int = 2,
        dropout: float = 0.2,
        lr: float = 1e-3,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = StackedRNN(architecture, hidden, layers, dropout)
        self.loss = nn.MSELoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        loss = self.loss(self(x).squeeze(-1), y)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
