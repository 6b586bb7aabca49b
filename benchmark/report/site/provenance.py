"""What produced a suite's numbers: one line per run in the store (its rows, what the page uses,
the versions, commit and host its rows record, when it ended), and every plugin's distribution
and version as the used rows record them (`TrialRow.plugin_versions`), with a warning when one
plugin appears at several versions (pe_bench.store.versions.mixed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pe_bench.report.site.markup import items, table
from pe_bench.report.site.suites import SuiteReport
from pe_bench.store import versions
from pe_bench.store.schema import Provenance, TrialRow


def _provenance(name: str) -> Callable[[TrialRow], str | None]:
    return lambda row: getattr(row.provenance, name)


# what produced a run's rows: the row model's provenance fields (labelled by their titles), the host
PROVENANCE: tuple[tuple[str, Callable[[TrialRow], str | None]], ...] = (
    *((info.title or name, _provenance(name)) for name, info in Provenance.model_fields.items()),
    ("host", lambda row: row.hostname))


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def runs(report: SuiteReport) -> str:
    """One line per run: rows ok / error / used, each provenance field's values, its end."""
    used = {(r.trial_key, r.run_id) for r in report.used}
    by_run: dict[str, list[TrialRow]] = {}
    for row in report.rows:
        by_run.setdefault(row.run_id, []).append(row)
    head = ["run", "ok", "errors", "used", *(label for label, _ in PROVENANCE), "finished"]
    body = []
    for run_id, rows in sorted(by_run.items(), key=lambda kv: max(r.finished_at for r in kv[1])):
        values = [", ".join(sorted({str(get(r)) for r in rows if get(r)})) or "-" for _, get in PROVENANCE]
        counts = [sum(r.status == "ok" for r in rows), sum(r.status != "ok" for r in rows),
                  sum((r.trial_key, r.run_id) in used for r in rows)]
        body.append([run_id, *counts, *values, _when(max(r.finished_at for r in rows))])
    return table(head, body, "prov", "runs")


def plugin_versions(rows: Sequence[TrialRow]) -> str:
    """Each (kind, plugin, distribution version) the rows record, with its count of rows; a
    note on rows recording none; a warning per plugin at several versions."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for row in rows:
        for kind, names in versions.parse(row.plugin_versions).items():
            seen.update((kind, name, version) for name, version in names.items())
    unrecorded = sum(not versions.parse(r.plugin_versions) for r in rows)
    body = [[kind, name, version, count] for (kind, name, version), count in sorted(seen.items())]
    shown = table(["kind", "plugin", "distribution version", "rows"], body, "prov",
                  "plugins, as the used rows record them") if body else ""
    notes = [f"{unrecorded} of {len(rows)} used rows record no plugin versions (written before "
             "versions were recorded)"] if unrecorded else []
    mixed = [f"one plugin at several versions: {m}" for m in versions.mixed(r.plugin_versions for r in rows)]
    return shown + items(notes) + items(mixed, "warn")


def provenance(report: SuiteReport) -> str:
    return ('<section class="prov" id="provenance"><h2>Provenance</h2>'
            f"{runs(report)}{plugin_versions(report.used)}</section>")
