"""Backbones: output shapes, channels, resolutions; the ViT's sizes and position embeddings."""

from __future__ import annotations

import pydantic
import pytest
import torch

from pe_bench.encoders.backbones import BACKBONES, ViTTiny, build_backbone, sincos_position_embedding_2d
from pe_bench.encoders.base import EncoderParams

CNNS = ["small-cnn", "resnet18"]


@pytest.fixture(scope="module")
def built() -> dict[tuple[str, int], torch.nn.Module]:
    torch.manual_seed(0)
    return {(name, c): build_backbone(name, c) for name in BACKBONES for c in (1, 3)}


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", list(BACKBONES))
def test_maps_images_to_feature_vectors(built, name: str, channels: int) -> None:
    net = built[(name, channels)]
    assert isinstance(net.feature_dim, int) and net.feature_dim > 0
    assert sum(p.numel() for p in net.parameters()) > 0
    with torch.no_grad():
        out = net(torch.randn(2, channels, 32, 32))
    assert out.shape == (2, net.feature_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("hw", [(16, 16), (24, 16)])
@pytest.mark.parametrize("name", list(BACKBONES))
def test_other_resolutions(built, name: str, hw: tuple[int, int]) -> None:
    net = built[(name, 3)]
    with torch.no_grad():
        assert net(torch.randn(2, 3, *hw)).shape == (2, net.feature_dim)


def test_cnn_defaults_unchanged(built) -> None:
    assert built[("small-cnn", 3)].feature_dim == 256
    assert built[("resnet18", 3)].feature_dim == 512
    assert build_backbone("small-cnn", 3, width=4).feature_dim == 32


def test_vit_tiny_sizes_and_width() -> None:
    torch.manual_seed(0)
    vit = build_backbone("vit-tiny", 3)
    assert isinstance(vit, ViTTiny)
    assert vit.feature_dim == 192 and len(vit.blocks) == 6 and vit.patch_size == 4
    assert vit.blocks[0].self_attn.num_heads == 3
    assert 2_000_000 < sum(p.numel() for p in vit.parameters()) < 3_500_000
    for width, heads in ((16, 1), (96, 1), (384, 6)):
        small = build_backbone("vit-tiny", 3, width=width)
        assert small.feature_dim == width and small.blocks[0].self_attn.num_heads == heads
    with pytest.raises(ValueError, match="divisible"):
        ViTTiny(width=10, heads=3)


def test_vit_rejects_sizes_not_divisible_by_the_patch() -> None:
    vit = ViTTiny(width=16, depth=1)
    with pytest.raises(ValueError, match="divisible by the patch size"):
        vit(torch.randn(1, 3, 30, 32))


def test_vit_eval_fast_path_matches_training_path() -> None:
    """`encode` runs eval + no_grad (PyTorch's fused encoder-layer path); training does not."""
    torch.manual_seed(0)
    vit = ViTTiny(width=32, depth=2).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        fast = vit(x)
    slow = vit(x)  # grad enabled: the fused path is off
    assert torch.allclose(fast, slow.detach(), atol=1e-5)


def test_sincos_position_embedding() -> None:
    pe = sincos_position_embedding_2d(4, 6, 16)
    assert pe.shape == (24, 16)
    assert len({tuple(row.tolist()) for row in pe}) == 24  # every patch position distinct
    odd = sincos_position_embedding_2d(2, 2, 10)
    assert odd.shape == (4, 10) and torch.equal(odd[:, 8:], torch.zeros(4, 2))


def test_vit_builds_its_position_embedding_once_per_grid(monkeypatch) -> None:
    """Built on the CPU and copied to the device once per grid (device, dtype), not on every
    forward (a host-to-device copy per step on a GPU); the features do not change."""
    import pe_bench.encoders.backbones as backbones

    built, real = [], backbones.sincos_position_embedding_2d
    monkeypatch.setattr(backbones, "sincos_position_embedding_2d",
                        lambda *args: built.append(args) or real(*args))
    torch.manual_seed(0)
    vit = ViTTiny(width=8, depth=1)
    x = torch.randn(2, 3, 8, 8)
    first, again = vit(x), vit(x)
    vit(torch.randn(2, 3, 8, 16))
    assert built == [(2, 2, 8), (2, 4, 8)]
    tokens = vit.patch_embed(x).flatten(2).transpose(1, 2) + real(2, 2, 8)
    for block in vit.blocks:
        tokens = block(tokens)
    assert torch.equal(first, again) and torch.equal(first, vit.norm(tokens).mean(dim=1))


def test_encoder_params_accept_the_backbone_names() -> None:
    for name in BACKBONES:
        assert EncoderParams(backbone=name).backbone == name
    with pytest.raises(pydantic.ValidationError):
        EncoderParams(backbone="vit-huge")
