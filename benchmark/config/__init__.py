"""The suite as configured: suite files, --set overrides, the trial spec and recipe, the grid of trials (torch-free)."""
