"""From stored rows to what a reader sees: the board, statistics, views and renderers, figures, publish (torch-free)."""
