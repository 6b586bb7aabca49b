"""A live progress line for long runs: trials done / running / failed, elapsed time.

The line appears when the first trial starts, so an engine that stops before any trial runs
(Ray cannot give a trial its resources, say) leaves nothing on the terminal but its error."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class TrialProgress:
    """Counts trials as the run's sink reports them; a context manager around the run."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self.total, self.running, self.done, self.failed = total, 0, 0, 0
        self._progress = Progress(
            TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.description}"), TimeElapsedColumn(),
            console=console or Console(stderr=True), transient=False,
        )
        self._task = self._progress.add_task(self._describe(), total=total)
        self._shown = False

    def _describe(self) -> str:
        return f"running {self.running} · failed {self.failed}"

    def _refresh(self) -> None:
        self._progress.update(self._task, completed=self.done + self.failed, description=self._describe())

    def started(self) -> None:
        if not self._shown:
            self._progress.start()
            self._shown = True
        self.running += 1
        self._refresh()

    def finished(self, ok: bool) -> None:
        self.running = max(0, self.running - 1)
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self._refresh()

    def __enter__(self) -> TrialProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._shown:
            self._progress.stop()
