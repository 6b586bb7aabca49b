"""What runs trials: the engine seam, the Ray Tune engine (the only module importing Ray), the in-process engine, one trial, the row sink."""
