"""The training loop: determinism, paired clean twins, poison scheduling."""

from __future__ import annotations

import numpy as np
import torch

from pe_bench.encoders.simclr import SimCLR
from pe_bench.config.spec import TrainSpec
from pe_bench.worker.plan import poison_picks
from pe_bench.worker.train import encode, pretrain, steps_per_epoch

RECIPE = TrainSpec(epochs=2, batch_size=16, device="cpu")


def _model() -> SimCLR:
    torch.manual_seed(0)
    return SimCLR.from_dict({"width": 4, "proj_hidden_dim": 16, "proj_dim": 8})


def _images(n: int, h: int = 8, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, h, w), dtype=np.uint8)


def test_poison_feed_covers_each_poison_once_per_epoch() -> None:
    groups = (torch.arange(5).view(5, 1), torch.arange(100, 103).view(3, 1))
    picks = poison_picks([len(g) for g in groups], steps=3, gen=torch.Generator().manual_seed(0))
    assert len(picks) == 3
    seen = [int(v) for step in picks for group, rows in step for v in groups[group][rows].flatten()]
    assert sorted(seen) == [0, 1, 2, 3, 4, 100, 101, 102]


def _numbered(n: int, first: int = 0, h: int = 8, w: int = 8) -> np.ndarray:
    """Images that carry their own id (`first`..`first + n - 1`) in their first pixel."""
    ids = np.arange(first, first + n)
    out = np.zeros((n, 3, h, w), dtype=np.uint8)
    out[:, 0, 0, 0], out[:, 1, 0, 0] = ids % 256, ids // 256
    return out


def _fed_per_epoch(monkeypatch, clean: np.ndarray, poisons: tuple[np.ndarray, ...],
                   recipe: TrainSpec) -> list[tuple[list[int], list[int]]]:
    """(clean ids, injected ids) that the loop fed per epoch, read off the batches themselves."""
    import pe_bench.worker.train as train

    real, steps, epochs = train._views, [], []

    def ids(x: torch.Tensor) -> list[int]:
        return (x[:, 0, 0, 0].long() + 256 * x[:, 1, 0, 0].long()).tolist()

    def recording(batch, injected, *args):
        steps.append((ids(batch), [i for part in injected for i in ids(part)]))
        return real(batch, injected, *args)

    def epoch_done(epoch: int, _loss: float) -> None:
        epochs.append((sum((c for c, _ in steps), []), sum((p for _, p in steps), [])))
        steps.clear()

    monkeypatch.setattr(train, "_views", recording)
    pretrain(_model(), clean, poisons, recipe, seed=0, progress=epoch_done)
    return epochs


def test_every_image_is_fed_once_per_epoch_so_the_poison_share_is_nominal(monkeypatch) -> None:
    """A digits-sized set (1,347 clean images, 256 per batch: 5.26 batches) with a 5% budget:
    no clean image is dropped, so the poisons' share per epoch is the nominal one."""
    n, m = 1347, 71
    clean, poison = _numbered(n), _numbered(m, first=10_000, w=16)
    recipe = TrainSpec(epochs=2, batch_size=256, device="cpu")
    fed = _fed_per_epoch(monkeypatch, clean, (poison,), recipe)
    assert len(fed) == recipe.epochs
    for clean_ids, poison_ids in fed:
        assert sorted(clean_ids) == list(range(n))
        assert sorted(poison_ids) == list(range(10_000, 10_000 + m))
        assert len(poison_ids) / (len(clean_ids) + len(poison_ids)) == m / (n + m)
    assert fed[0][0] != fed[1][0]  # a new order each epoch


def test_partition_ensemble_members_see_their_nominal_poison_share(monkeypatch) -> None:
    """Each member of a partition ensemble trains on about a third of the set; small sets lost
    up to a third of their clean images to drop-last. Now each member's share is exact."""
    from pe_bench.attacks.base import PoisonSet
    from pe_bench.defenses.base import PretrainData
    from pe_bench.plugins.registry import DEFENSES

    n, m = 1347, 71
    data = PretrainData(_numbered(n), PoisonSet((_numbered(m, first=10_000, w=16),)))
    parts = DEFENSES.get("partition-ensemble").from_dict({"k": 3}).partition(data)
    recipe = TrainSpec(epochs=1, batch_size=256, device="cpu")
    assert any(len(p.clean) % recipe.batch_size > recipe.batch_size // 4 for p in parts)
    for part in parts:
        ((clean_ids, poison_ids),) = _fed_per_epoch(monkeypatch, part.clean, part.poisons.groups, recipe)
        assert sorted(clean_ids) == sorted(part.clean_ids.tolist())
        assert sorted(poison_ids) == sorted((10_000 + part.poison_ids).tolist())
        assert len(poison_ids) / (len(clean_ids) + len(poison_ids)) == part.poisons.size / part.size


def test_steps_per_epoch_is_the_nearest_whole_number_of_batches() -> None:
    assert [steps_per_epoch(n, 256) for n in (1, 300, 383, 385, 1347, 2000)] == [1, 1, 1, 2, 5, 8]
    assert steps_per_epoch(500, 64) == 8


def test_same_seed_same_weights() -> None:
    clean = _images(48)
    a, b = _model(), _model()
    pretrain(a, clean, (), RECIPE, seed=3)
    pretrain(b, clean, (), RECIPE, seed=3)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)


def test_twin_sees_identical_clean_views(monkeypatch) -> None:
    """The poisoned run's clean part of every batch equals the clean twin's batch exactly."""
    clean, poison = _images(48), _images(6, 8, 16, seed=1)
    recorded: dict[str, list[torch.Tensor]] = {"twin": [], "poisoned": []}

    def run(label: str, poisons: tuple[np.ndarray, ...]) -> None:
        model = _model()
        original = model.training_loss

        def spy(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
            recorded[label].append(v1[:RECIPE.batch_size].detach().clone())
            return original(v1, v2)

        monkeypatch.setattr(model, "training_loss", spy)
        pretrain(model, clean, poisons, RECIPE, seed=1)

    run("twin", ())
    run("poisoned", (poison,))
    assert len(recorded["twin"]) == len(recorded["poisoned"]) == 2 * (48 // 16)
    for a, b in zip(recorded["twin"], recorded["poisoned"], strict=True):
        assert torch.equal(a, b)


def test_poisons_change_the_encoder_and_training_reduces_loss() -> None:
    clean = _images(64)
    losses: list[float] = []
    twin, poisoned = _model(), _model()
    pretrain(twin, clean, (), TrainSpec(epochs=6, batch_size=32, device="cpu"), seed=0,
             progress=lambda epoch, loss: losses.append(loss))
    recipe = TrainSpec(epochs=6, batch_size=32, device="cpu")
    pretrain(poisoned, clean, (_images(8, 8, 16, seed=2),), recipe, seed=0)
    assert losses[-1] < losses[0]
    feats_twin, feats_poisoned = encode(twin, clean[:4]), encode(poisoned, clean[:4])
    assert feats_twin.shape == (4, twin.feature_dim)
    assert not np.allclose(feats_twin, feats_poisoned)



def _lr_per_step(monkeypatch) -> list[float]:
    """The learning rate of every optimiser step the training loops take from now on."""
    import pe_bench.worker.train as train

    real, seen = train.make_optimizer, []

    def spy(model, recipe):
        opt = real(model, recipe)
        step = opt.step

        def recorded(*args, **kwargs):
            seen.append(opt.param_groups[0]["lr"])
            return step(*args, **kwargs)

        opt.step = recorded
        return opt

    monkeypatch.setattr(train, "make_optimizer", spy)
    return seen


def _warmup_cosine(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + np.cos(np.pi * (step - warmup) / (total - warmup)))


def test_the_recipe_warms_up_then_decays_the_learning_rate(monkeypatch) -> None:
    """Linear warm-up over `warmup_epochs`, then cosine decay to 0, step by step."""
    lrs = _lr_per_step(monkeypatch)
    recipe = TrainSpec(epochs=4, batch_size=16, device="cpu", optimizer="sgd", lr=0.1, warmup_epochs=1)
    pretrain(_model(), _images(32), (), recipe, seed=0)  # 2 steps per epoch today
    total, per_epoch = len(lrs), len(lrs) // recipe.epochs
    assert per_epoch >= 2 and total == per_epoch * recipe.epochs
    assert np.allclose(lrs, [_warmup_cosine(s, total, per_epoch, 0.1) for s in range(total)],
                       rtol=1e-12, atol=0)
    assert lrs[0] < lrs[1] == max(lrs) and lrs[-1] < 0.1 * lrs[1]


def test_distillation_decays_the_learning_rate(monkeypatch) -> None:
    from pe_bench.worker.train import distill

    lrs = _lr_per_step(monkeypatch)
    recipe = TrainSpec(epochs=3, batch_size=16, device="cpu", optimizer="sgd", lr=0.1)
    distill(_model(), _model(), _images(32), recipe, seed=0)  # 2 steps per epoch today
    assert len(lrs) >= recipe.epochs
    assert np.allclose(lrs, [_warmup_cosine(s, len(lrs), 0, 0.1) for s in range(len(lrs))],
                       rtol=1e-12, atol=0)
    assert lrs[0] == 0.1 and lrs[-1] < 0.1 * lrs[0]


def test_distillation_feeds_every_image_once_per_epoch(monkeypatch) -> None:
    import pe_bench.worker.train as train

    real, fed = train.render, []

    def recording(batch, *args):  # float images in [0, 1]: the ids are whole multiples of 1/255
        ids = (batch[:, 0, 0, 0] * 255).round().long() + 256 * (batch[:, 1, 0, 0] * 255).round().long()
        fed.extend(ids.tolist())
        return real(batch, *args)

    monkeypatch.setattr(train, "render", recording)
    recipe = TrainSpec(epochs=2, batch_size=16, device="cpu")
    train.distill(_model(), _model(), _numbered(40), recipe, seed=0)  # 2.5 batches per epoch
    assert sorted(fed) == sorted(list(range(40)) * recipe.epochs)


def test_cuda_fast_paths_are_set_for_cuda_only(monkeypatch) -> None:
    """cuDNN autotuning and TF32 matmuls change numbers: a CPU run never sets them."""
    from pe_bench.worker.train import cuda_fast_paths

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    precision = torch.get_float32_matmul_precision()
    pretrain(_model(), _images(32), (), RECIPE, seed=0)
    cuda_fast_paths(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False and torch.get_float32_matmul_precision() == precision
    try:
        cuda_fast_paths(torch.device("cuda"))  # sets flags only; needs no GPU
        assert torch.backends.cudnn.benchmark is True
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(precision)
