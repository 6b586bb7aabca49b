"""The published static site (`pe-bench publish`): an index of the store's suites and one page
per suite (effect heat maps with a per-seed drill-down per cell, the board's small tables, the
papers' reference numbers, the trade-off figure, provenance), rendered from the store only.

Every page opens from a file share with no network (inline CSS and JS, figures as data URIs)
and shows every string from a suite, a plugin or a row as escaped text. Nothing here computes a
statistic: each number is one the suite's lines (pe_bench.report.leaderboard.aggregate) or its
per-seed lines (pe_bench.report.per_seed) already carry, shown through pe_bench.report.matrix.
"""
