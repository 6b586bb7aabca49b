"""Encoder plugins (SimCLR, ...) and their building blocks: losses, backbones, heads."""
