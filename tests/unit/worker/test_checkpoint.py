"""In-run checkpoints (issue #25, point 5): a pre-training interrupted after epoch 2 of 4 and
resumed from its checkpoint ends with weights bit-identical to an uninterrupted run's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pe_bench.config.spec import TrainSpec
from pe_bench.encoders.base import EncoderMethod
from pe_bench.encoders.moco import MoCo
from pe_bench.encoders.simclr import SimCLR
from pe_bench.errors import PeBenchError
from pe_bench.worker.cache import ArtifactCache
from pe_bench.worker.checkpoint import ENV, SUFFIX, Checkpoint, every_from_env
from pe_bench.worker.train import pretrain

RECIPE = TrainSpec(epochs=4, batch_size=16, device="cpu", lr=0.05, weight_decay=1e-4, optimizer="sgd",
                   warmup_epochs=1)
PARAMS = {"width": 4, "proj_hidden_dim": 16, "proj_dim": 8}
IMAGES = np.random.default_rng(0).integers(0, 256, (48, 3, 8, 8), dtype=np.uint8)
POISONS = (np.random.default_rng(1).integers(0, 256, (5, 3, 8, 8), dtype=np.uint8),)


class Preempted(Exception):
    pass


def _model(method: type[EncoderMethod]) -> EncoderMethod:
    torch.manual_seed(0)
    params = {**PARAMS, "queue_size": 24} if method is MoCo else PARAMS
    return method.from_dict(params)


def _stop_after(epoch: int):  # the exception hook: the loop's progress callback
    def progress(done: int, loss: float) -> None:
        if done == epoch:
            raise Preempted(f"preempted after epoch {done}")
    return progress


@pytest.mark.parametrize("method", [SimCLR, MoCo], ids=["simclr", "moco-queue-and-key-encoder"])
def test_a_resumed_pretraining_is_bit_identical_to_an_uninterrupted_one(tmp_path: Path, method) -> None:
    whole = _model(method)
    pretrain(whole, IMAGES, POISONS, RECIPE, seed=3)
    checkpoint = Checkpoint(ArtifactCache(tmp_path), "encoders", "k", every=1)
    with pytest.raises(Preempted):
        pretrain(_model(method), IMAGES, POISONS, RECIPE, seed=3, progress=_stop_after(2),
                 checkpoint=checkpoint)
    assert (tmp_path / "encoders" / f"k{SUFFIX}").is_file()
    epochs = []
    torch.manual_seed(12345)  # the global stream is restored from the checkpoint too
    resumed = _model(method)
    pretrain(resumed, IMAGES, POISONS, RECIPE, seed=3, progress=lambda e, _: epochs.append(e),
             checkpoint=checkpoint)
    assert epochs == [3, 4]  # only the remaining epochs ran
    ref, got = whole.state_dict(), resumed.state_dict()
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref), [k for k in ref if not torch.equal(ref[k], got[k])]


def test_checkpoints_are_written_when_due_and_never_after_the_last_epoch(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    saved: list[int] = []
    original = Checkpoint.after_epoch

    def spy(self: Checkpoint, done: int, *args) -> None:
        original(self, done, *args)
        if cache.read_side("encoders", "k", SUFFIX) is not None:
            saved.append(int(torch.load(tmp_path / "encoders" / f"k{SUFFIX}", weights_only=True)["epoch"]))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Checkpoint, "after_epoch", spy)
        pretrain(_model(SimCLR), IMAGES, (), RECIPE, seed=0, checkpoint=Checkpoint(cache, "encoders", "k", 2))
    assert saved == [2, 2, 2]  # after epochs 2, 3, 4 the file holds epoch 2; none after epoch 4
    Checkpoint(cache, "encoders", "k", 2).clear()
    assert not list(tmp_path.rglob(f"*{SUFFIX}"))


def test_a_checkpoint_of_another_architecture_is_ignored(tmp_path: Path) -> None:
    checkpoint = Checkpoint(ArtifactCache(tmp_path), "encoders", "k", every=1)
    with pytest.raises(Preempted):
        pretrain(_model(SimCLR), IMAGES, (), RECIPE, seed=0, progress=_stop_after(1), checkpoint=checkpoint)
    other = MoCo.from_dict({**PARAMS, "queue_size": 24})
    epochs: list[int] = []
    with pytest.warns(UserWarning, match="does not fit"):
        pretrain(other, IMAGES, (), RECIPE, seed=0, progress=lambda e, _: epochs.append(e),
                 checkpoint=checkpoint)
    assert epochs == [1, 2, 3, 4]


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert every_from_env() == 10
    monkeypatch.setenv(ENV, "0")
    assert every_from_env() == 0
    monkeypatch.setenv(ENV, "often")
    with pytest.raises(PeBenchError, match=ENV):
        every_from_env()
    recipe = RECIPE.model_validate({**RECIPE.model_dump(), "caption_matching": {"pool_size": 8, "every": 2}})
    monkeypatch.setenv(ENV, "1")
    assert Checkpoint.for_build(ArtifactCache("/tmp/unused"), "encoders", "k", recipe).every == 0


def test_a_trial_that_checkpoints_gets_the_same_numbers_and_leaves_no_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.worker.test_pipeline import spec
    from tests.unit.worker.test_probe_cache import _numbers
    from pe_bench.worker.pipeline import run_trial

    trial = spec("simclr", "duplicate", poison_rate=0.1, targets_per_task=2)
    trial = trial.model_copy(update={"train": trial.train.replace(epochs=3)})
    written: list[int] = []
    original = ArtifactCache.write_side
    monkeypatch.setattr(ArtifactCache, "write_side",
                        lambda self, *a: (written.append(1), original(self, *a))[1])
    monkeypatch.setenv(ENV, "1")
    saved = run_trial(trial, Path("unused"), tmp_path / "ckpt")
    assert len(written) == 4  # after epochs 1 and 2 of the twin and of the poisoned encoder
    assert not list((tmp_path / "ckpt").rglob(f"*{SUFFIX}"))  # deleted once each encoder is stored
    monkeypatch.setenv(ENV, "0")
    assert _numbers(saved) == _numbers(run_trial(trial, Path("unused"), tmp_path / "plain"))
