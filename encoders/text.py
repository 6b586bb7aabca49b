"""A small text encoder for CLIP-style training from scratch on templated captions."""

from __future__ import annotations

import torch
from torch import nn

from pe_bench.plugins.captions import PAD


class TextEncoder(nn.Module):
    """Token embedding + learned positions -> pre-norm Transformer -> masked mean pooling."""

    def __init__(self, vocab_size: int, max_tokens: int, dim: int = 128, depth: int = 2,
                 heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.pos = nn.Parameter(torch.zeros(1, max_tokens, dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pad = tokens == PAD
        x = self.embed(tokens) + self.pos[:, : tokens.shape[1]]
        x = self.norm(self.blocks(x, src_key_padding_mask=pad))
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        return (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
