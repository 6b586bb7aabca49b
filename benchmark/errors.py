"""User-facing errors: each carries a one-line message the CLI prints as is (exit status 2)."""

from __future__ import annotations


class PeBenchError(Exception):
    """An error caused by the user's input (suite, plugin name, data location), not a bug."""


class SuiteError(PeBenchError):
    """A suite file that cannot be loaded; names the file and the offending key path."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file, self.key, self.message = file, key, message
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {message}")


class PluginError(PeBenchError):
    """Unknown, clashing or broken plugin."""


class DataError(PeBenchError):
    """A dataset that cannot be found or read."""


class DeviceError(PeBenchError):
    """A recipe asks for a device (`train.device: cuda`) that the machine running it lacks."""


class StoreWriteError(PeBenchError):
    """The results store cannot be written (full disk, lost mount, no permission): the run
    stops, keeping every row written before (exit status 1)."""
