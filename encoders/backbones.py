"""Backbones chosen by name in a suite: a small conv net for CPU suites, CIFAR-stem ResNet18
for GPU suites, a small ViT for 32x32 inputs. Each maps (B, C, H, W) images to (B, feature_dim)
features. The CNNs take any resolution (global average pooling); the ViT takes any H x W
divisible by its patch size (fixed 2-D sin-cos position embeddings, mean-pooled tokens).

Each is registered once, here, with `@register_backbone("name")`: the registry reads the names
from this file's source, so encoder params validate a backbone name without importing torch."""

from __future__ import annotations

import torch
from torch import nn

from pe_bench.plugins.registry import BACKBONES, register_backbone

__all__ = ["BACKBONES", "ResNet18Cifar", "SmallCNN", "ViTTiny", "build_backbone", "projection_head"]


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


@register_backbone("small-cnn")
class SmallCNN(nn.Module):
    """Five 3x3 conv-BN-ReLU layers, three of them strided, then global average pooling.
    ~0.4M parameters at width 32: trains at a few hundred images/s on one CPU core."""

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _conv_bn(in_channels, w, 1),
            _conv_bn(w, 2 * w, 2),
            _conv_bn(2 * w, 2 * w, 1),
            _conv_bn(2 * w, 4 * w, 2),
            _conv_bn(4 * w, 8 * w, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register_backbone("resnet18")
class ResNet18Cifar(nn.Module):
    """ResNet18 with the CIFAR stem (3x3 stride-1 first conv, no max-pool), as in SimCLR's
    CIFAR experiments; torchvision's implementation, randomly initialised (no weights)."""

    def __init__(self, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        if width != 64:
            raise ValueError("resnet18 has a fixed width of 64")
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net
        self.feature_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def sincos_position_embedding_2d(grid_h: int, grid_w: int, dim: int,
                                 temperature: float = 10_000.0) -> torch.Tensor:
    """(grid_h * grid_w, dim) fixed 2-D sin-cos position embedding, row-major over the grid.

    As in MoCo v3's ViT (Chen, Xie, He, ICCV 2021): a quarter of the channels each carry
    sin(x * w), cos(x * w), sin(y * w), cos(y * w) over `dim // 4` frequencies; channels left
    over when `dim` is not a multiple of 4 are zero."""
    quarter = dim // 4
    y, x = torch.meshgrid(torch.arange(grid_h, dtype=torch.float32),
                          torch.arange(grid_w, dtype=torch.float32), indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / max(quarter, 1))
    out_x = x.flatten()[:, None] * omega[None, :]
    out_y = y.flatten()[:, None] * omega[None, :]
    pe = torch.cat([out_x.sin(), out_x.cos(), out_y.sin(), out_y.cos()], dim=1)
    return nn.functional.pad(pe, (0, dim - 4 * quarter))


def _default_heads(dim: int) -> int:
    """DeiT's convention of 64-dim heads (tiny: 192 -> 3, small: 384 -> 6, base: 768 -> 12):
    the largest head count <= max(1, dim // 64) that divides `dim`."""
    heads = max(1, dim // 64)
    while dim % heads:
        heads -= 1
    return heads


@register_backbone("vit-tiny")
class ViTTiny(nn.Module):
    """A small Vision Transformer for 32x32 inputs (Dosovitskiy et al., ICLR 2021; DeiT-Tiny
    sizes, Touvron et al., ICML 2021): 4x4 patches (64 tokens at 32x32), embedding dim 192,
    6 pre-norm encoder blocks with 3 heads and a 4x MLP (GELU), ~2.7M parameters.

    [ours] Choices for small images trained from scratch: no class token -- the features are
    the mean of the final tokens after a last LayerNorm (global average pooling, like the
    CNNs here); position embeddings are fixed 2-D sin-cos (MoCo v3's choice) computed for the
    input's patch grid, so any H x W divisible by `patch_size` works without interpolation.
    `width` is the embedding dim; heads default to 64-dim heads (3 at 192). Linear layers are
    initialised truncated-normal(std 0.02) with zero bias, as in timm/DeiT. No dropout."""

    def __init__(self, in_channels: int = 3, width: int = 192, depth: int = 6,
                 heads: int | None = None, patch_size: int = 4, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        heads = _default_heads(width) if heads is None else heads
        if width % heads:
            raise ValueError(f"vit-tiny: embedding dim {width} is not divisible by {heads} heads")
        self.patch_size = patch_size
        self.patch_embed = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, dim_feedforward=int(width * mlp_ratio), dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.feature_dim = width
        self._positions: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"vit-tiny needs height and width divisible by the patch size {self.patch_size}; "
                f"got {h}x{w}")
        tokens = self.patch_embed(x)  # (B, D, h/p, w/p)
        grid_h, grid_w = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)  # (B, N, D)
        tokens = tokens + self._position(grid_h, grid_w, tokens)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens).mean(dim=1)

    def _position(self, grid_h: int, grid_w: int, tokens: torch.Tensor) -> torch.Tensor:
        """The position embedding of a grid_h x grid_w grid on `tokens`' device and dtype:
        computed on the CPU (the same numbers on every device) and moved once per grid,
        device and dtype, not built and copied to the device on every forward."""
        key = (grid_h, grid_w, tokens.device, tokens.dtype)
        if key not in self._positions:
            pos = sincos_position_embedding_2d(grid_h, grid_w, tokens.shape[-1])
            self._positions[key] = pos.to(device=tokens.device, dtype=tokens.dtype)
        return self._positions[key]


def build_backbone(name: str, in_channels: int, width: int | None = None) -> nn.Module:
    """The backbone registered as `name` (`@register_backbone`; names are checked when a
    suite's encoder params are validated)."""
    kwargs = {} if width is None else {"width": width}
    module: nn.Module = BACKBONES.get(name)(in_channels=in_channels, **kwargs)
    return module


def projection_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Module:
    """SimCLR's 2-layer MLP projection head; downstream tasks use the features before it."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )
