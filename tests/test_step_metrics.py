"""``log_step_metrics`` (alarm_pl/step_metrics.py) writes what ``self.log(..., on_step=True, on_epoch=False)``
writes: the same rows, at the same steps, under ``log_every_n_steps``, and the same ``trainer.callback_metrics`` —
checked against Lightning's own ``self.log`` in two otherwise identical runs. Also: the evaluation mixin refuses a
module without ``run_identity``."""

import csv

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from alarm_pl.step_metrics import log_step_metrics


class Tiny(pl.LightningModule):
    def __init__(self, fast: bool):
        super().__init__()
        self.fast = fast
        self.layer = torch.nn.Linear(2, 1)
        self.seen: list[float] = []

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch).pow(2).mean()
        metrics = {"train/loss": float(loss.detach()), "train/index": float(batch_idx) + 0.5}
        if self.fast:
            log_step_metrics(self.trainer, metrics)
        else:
            self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=len(batch))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Reader(pl.Callback):
    """What a checkpoint monitor or the progress bar sees after every batch."""

    def __init__(self):
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.values.append(float(trainer.callback_metrics["train/index"]))


def run(tmp_path, fast: bool, every: int):
    torch.manual_seed(0)
    reader = Reader()
    trainer = pl.Trainer(
        max_epochs=2,
        logger=CSVLogger(tmp_path / ("fast" if fast else "lightning"), name="logs"),
        log_every_n_steps=every,
        callbacks=[reader],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny(fast), DataLoader(torch.randn(7, 2), batch_size=2))  # 4 batches per epoch, 8 in all
    path = tmp_path / ("fast" if fast else "lightning") / "logs" / "version_0" / "metrics.csv"
    rows = []
    if path.exists():
        with open(path) as handle:
            rows = [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
    return rows, reader.values, trainer


@pytest.mark.parametrize("every", [1, 3])
def test_rows_steps_and_callback_metrics_match_lightnings_own_log(tmp_path, every):
    lightning_rows, lightning_seen, _ = run(tmp_path, fast=False, every=every)
    fast_rows, fast_seen, trainer = run(tmp_path, fast=True, every=every)
    assert fast_rows == lightning_rows
    assert fast_seen == lightning_seen == [0.5, 1.5, 2.5, 3.5] * 2
    expected_steps = [step for step in range(8) if (step + 1) % every == 0]
    assert [int(row["step"]) for row in fast_rows] == expected_steps
    assert [row["epoch"] for row in fast_rows] == [str(step // 4) for step in expected_steps]
    assert isinstance(trainer.callback_metrics["train/loss"], torch.Tensor)


def test_nothing_reaches_the_loggers_when_log_every_n_steps_is_zero(tmp_path):
    rows, seen, _ = run(tmp_path, fast=True, every=0)
    assert rows == [] and seen == [0.5, 1.5, 2.5, 3.5] * 2


def test_a_generation_evaluation_without_run_identity_is_refused_where_it_is_defined():
    from alarm_pl.eval.hooks import GenerationEvaluation

    with pytest.raises(TypeError, match="Incomplete mixes in GenerationEvaluation but defines no run_identity"):

        class Incomplete(GenerationEvaluation, pl.LightningModule):
            pass

    class Complete(GenerationEvaluation, pl.LightningModule):
        def run_identity(self, stage: str) -> dict:
            return {"stage": stage}

    assert Complete().run_identity("val") == {"stage": "val"}
