"""The results store: metric and row models, the Arrow schema, reading and writing rows (torch-free)."""
