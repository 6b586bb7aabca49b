"""MoCo v2: momentum key encoder (EMA, no gradient, outside the optimiser), queue, state_dict."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch
import torch.nn.functional as F

from pe_bench.encoders.moco import MoCo
from pe_bench.plugins.registry import ENCODERS
from pe_bench.config.spec import TrainSpec
from pe_bench.worker.train import encode, pretrain

RECIPE = TrainSpec(epochs=1, batch_size=16, device="cpu")


def _model(seed: int = 0, **params: object) -> MoCo:
    torch.manual_seed(seed)
    return MoCo.from_dict({"width": 4, "proj_hidden_dim": 16, "proj_dim": 8, "queue_size": 64, **params})


def _images(n: int, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def _views(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randn(n, 3, 8, 8, generator=g)


def _query_params(model: MoCo) -> dict[str, torch.Tensor]:
    """Query-encoder parameters, named like `MoCo.key_weights()`."""
    return {**{f"backbone.{k}": v for k, v in model.backbone.named_parameters()},
            **{f"head.{k}": v for k, v in model.head.named_parameters()}}


def _snapshot(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in tensors.items()}


def test_registered_with_validated_params() -> None:
    assert ENCODERS.get("moco") is MoCo
    params = MoCo.Params()
    assert (params.temperature, params.momentum, params.queue_size) == (0.2, 0.99, 4096)
    for bad in ({"queue_size": 0}, {"momentum": 1.5}, {"temperature": 0}, {"shuffle_bn": True}):
        with pytest.raises(pydantic.ValidationError):
            MoCo.Params.model_validate(bad)


def test_key_encoder_starts_equal_and_is_outside_parameters() -> None:
    model = _model()
    keys, queries = model.key_weights(), _query_params(model)
    assert keys.keys() == queries.keys() and keys
    for name, q in queries.items():
        assert torch.equal(keys[name], q), name
        assert keys[name] is not q and not keys[name].requires_grad
    assert dict(model.key_backbone.named_buffers()).keys() >= dict(model.backbone.named_buffers()).keys()
    param_ids = {id(p) for p in model.parameters()}
    assert not param_ids & {id(t) for t in model.key_weights().values()}
    assert not any(name.startswith("key_") for name, _ in model.named_parameters())
    assert model.queue.shape == (64, 8)
    assert torch.allclose(model.queue.norm(dim=1), torch.ones(64))


def test_each_step_is_an_ema_of_the_stepped_query(monkeypatch) -> None:
    model, m = _model(momentum=0.9), 0.9
    initial = _snapshot(model.key_weights())
    original, checked = model.after_step, []

    def spy() -> None:
        old_key, query = _snapshot(model.key_weights()), _snapshot(_query_params(model))
        original()
        for name, new in model.key_weights().items():
            assert torch.allclose(new, m * old_key[name] + (1 - m) * query[name], atol=1e-7), name
        checked.append(True)

    monkeypatch.setattr(model, "after_step", spy)
    pretrain(model, _images(32), (), RECIPE, seed=0)
    assert len(checked) == 2
    keys, queries = model.key_weights(), _query_params(model)
    assert any(not torch.equal(keys[k], initial[k]) for k in keys)
    assert any(not torch.equal(keys[k], queries[k]) for k in keys)
    assert all(v.grad is None for v in keys.values())


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimiser_never_touches_the_key_encoder(optimizer: str) -> None:
    """With momentum 1 the EMA is the identity, so any change would come from the optimiser."""
    model = _model(momentum=1.0)
    keys_before, query_before = _snapshot(model.key_weights()), _snapshot(_query_params(model))
    recipe = TrainSpec(epochs=1, batch_size=16, device="cpu", optimizer=optimizer, weight_decay=0.1)
    pretrain(model, _images(32), (), recipe, seed=0)
    for name, value in model.key_weights().items():
        assert torch.equal(value, keys_before[name]), name
    assert any(not torch.equal(v, query_before[k]) for k, v in _query_params(model).items())


def test_training_loss_is_finite_scalar_with_gradient_only_in_the_query() -> None:
    model = _model()
    loss = model.training_loss(*_views())
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(t.grad is None and not t.requires_grad for t in model.key_weights().values())


def test_queue_receives_the_newest_keys_and_pointer_wraps() -> None:
    model = _model(queue_size=40)
    v1, v2 = _views(16)
    model.training_loss(v1, v2)  # symmetric loss: 2 x 16 keys per step
    expected = F.normalize(torch.cat([model._keys(v1), model._keys(v2)]), dim=1)
    assert int(model.queue_ptr) == 32
    assert torch.allclose(model.queue[:32], expected, atol=1e-6)
    old_tail = model.queue[32:].clone()
    v3, v4 = _views(16, seed=1)
    model.training_loss(v3, v4)
    newer = F.normalize(torch.cat([model._keys(v3), model._keys(v4)]), dim=1)
    assert int(model.queue_ptr) == (32 + 32) % 40
    assert torch.allclose(model.queue[32:], newer[:8], atol=1e-6)
    assert torch.allclose(model.queue[:24], newer[8:], atol=1e-6)
    assert not torch.allclose(old_tail, model.queue[32:])


def _symmetric_loss(model, v1: torch.Tensor, v2: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
    """The reference loss: each view's queries against the other view's keys, `queue` as negatives."""
    from pe_bench.encoders.losses import info_nce

    q1, q2 = model.head(model.backbone(v1)), model.head(model.backbone(v2))
    k1, k2 = model._keys(v1), model._keys(v2)
    return (info_nce(q1, k2, queue, model.temperature) + info_nce(q2, k1, queue, model.temperature)) / 2


def test_the_loss_scores_queries_against_the_queue_of_earlier_batches_only() -> None:
    """This step's keys are positives for their own queries, never their negatives: the loss
    uses the queue as it stood before the step (they are enqueued after it)."""

    model = _model(queue_size=64)
    v1, v2 = _views(16)
    queue_before = model.queue.clone()
    loss = model.training_loss(v1, v2)
    assert torch.allclose(loss, _symmetric_loss(model, v1, v2, queue_before), atol=1e-6)
    assert not torch.equal(model.queue, queue_before)  # and they were enqueued afterwards


def test_more_keys_than_slots_keeps_the_last_ones() -> None:
    model = _model(queue_size=10)
    v1, v2 = _views(16)
    model.training_loss(v1, v2)
    keys = F.normalize(torch.cat([model._keys(v1), model._keys(v2)]), dim=1)
    assert int(model.queue_ptr) == 32 % 10
    for j in range(22, 32):  # as if written one by one: key j lands in slot j mod 10
        assert torch.allclose(model.queue[j % 10], keys[j], atol=1e-6)


def test_state_dict_round_trip_restores_features_queue_and_key_encoder() -> None:
    model = _model(seed=0)
    pretrain(model, _images(32), (), RECIPE, seed=0)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    assert {"queue", "queue_ptr"} <= state.keys()
    assert any(k.startswith("key_backbone.") for k in state)
    fresh = _model(seed=1)
    assert not torch.equal(fresh.queue, model.queue)
    fresh.load_state_dict(state)
    images = _images(4, seed=3)
    # allclose, not equal: the trained model is channels_last (pretrain), the fresh one is not
    assert np.allclose(encode(model, images), encode(fresh, images), rtol=1e-5, atol=1e-6)
    assert torch.equal(fresh.queue, model.queue) and int(fresh.queue_ptr) == int(model.queue_ptr)
    for name, value in model.key_weights().items():
        assert torch.equal(fresh.key_weights()[name], value)


def test_same_seed_same_weights_and_queue() -> None:
    a, b = _model(), _model()
    pretrain(a, _images(32), (), RECIPE, seed=2)
    pretrain(b, _images(32), (), RECIPE, seed=2)
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), name


def test_training_reduces_the_loss() -> None:
    losses: list[float] = []
    model = _model(momentum=0.9)
    recipe = TrainSpec(epochs=10, batch_size=32, device="cpu", lr=1e-2, crop_min_scale=0.5,
                       color_jitter_prob=0.0, grayscale_prob=0.0)
    pretrain(model, _images(64), (), recipe, seed=0, progress=lambda epoch, loss: losses.append(loss))
    assert all(np.isfinite(losses))
    # Epoch 1 scores its first step against the random initial queue, which is easy; from
    # epoch 2 on the queue (64 slots, 64 keys a step) holds real keys, so judge against that.
    assert np.mean(losses[-3:]) < losses[1]


def test_works_with_the_vit_backbone() -> None:
    torch.manual_seed(0)
    model = MoCo.from_dict({"backbone": "vit-tiny", "width": 16, "proj_hidden_dim": 16, "proj_dim": 8,
                            "queue_size": 32})
    before = _snapshot(model.key_weights())
    loss = model.training_loss(*_views(4))
    loss.backward()
    torch.optim.Adam(model.parameters(), lr=1e-2).step()
    model.after_step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(v, before[k]) for k, v in model.key_weights().items())
    assert model.features(torch.randn(2, 3, 8, 8)).shape == (2, 16)


def test_the_queue_in_use_is_capped_at_what_the_other_images_can_fill() -> None:
    """40 images in batches of 16: at most 24 keys of other images per epoch, so a 64-row queue
    uses 24 rows; the loss scores against those only and keys wrap within them."""

    model = _model(queue_size=64)
    assert model.before_training(40, 16) == {"queue_size": 24}
    untouched = model.queue[24:].clone()
    v1, v2 = _views(16)
    queue_before = model.queue[:24].clone()
    loss = model.training_loss(v1, v2)
    assert torch.allclose(loss, _symmetric_loss(model, v1, v2, queue_before), atol=1e-6)
    assert int(model.queue_ptr) == 32 % 24 and torch.equal(model.queue[24:], untouched)
    assert _model(queue_size=8).before_training(40, 16) == {"queue_size": 8}  # never raised


def test_training_caps_the_queue_records_it_and_refuses_a_set_of_one_batch() -> None:
    from pe_bench.errors import PluginError
    from pe_bench.worker.train import steps_per_epoch

    model = _model(queue_size=4096)
    largest_batch = -(-40 // steps_per_epoch(40, RECIPE.batch_size))  # 40 images in near-equal batches
    cap = 40 - largest_batch
    initial_tail = model.queue[cap:].clone()
    result = pretrain(model, _images(40), (), RECIPE, seed=0)
    assert result.fitted == {"queue_size": cap}
    assert torch.equal(model.queue[cap:], initial_tail)  # no key was ever written beyond the cap
    with pytest.raises(PluginError, match="queue"):
        pretrain(_model(), _images(16), (), RECIPE, seed=0)


def test_a_trial_records_the_queue_size_in_use(tmp_path) -> None:
    import json
    from pathlib import Path

    from pe_bench.worker.pipeline import run_trial
    from pe_bench.config.spec import EvalSpec, PluginRef, PretrainSpec, TaskSpec, TrialSpec

    digits = PluginRef(name="digits", params={"resolution": 8})
    spec = TrialSpec(suite="unit", dataset="digits", seed=0,
                     pretrain=PretrainSpec(dataset=digits, max_images=200),
                     tasks=(TaskSpec(name="digits", dataset=digits, train_size=100, test_size=50),),
                     encoder=PluginRef(name="moco", params={"width": 4, "proj_dim": 8}),
                     attack=PluginRef(name="none"), defense=PluginRef(name="none"),
                     train=TrainSpec(epochs=1, batch_size=64, device="cpu"),
                     evaluation=EvalSpec(max_iter=100))
    from pe_bench.worker.train import steps_per_epoch

    out = run_trial(spec, Path("unused"), tmp_path)
    largest_batch = -(-out.n_pretrain // steps_per_epoch(out.n_pretrain, 64))
    assert json.loads(out.encoder.fitted or "{}") == {"queue_size": out.n_pretrain - largest_batch}
