"""Contract checks for plugin authors: `check_attack(MyAttack)`, `check_defense(MyDefense)`,
`check_encoder(MyEncoder)`, `check_dataset(MyDataset, data_dir)` in one call each.

Each runs the plugin on tiny synthetic data (seconds on a CPU) and raises AssertionError naming
the broken rule. pe-bench's own contract tests run them over every registered plugin of every
kind, installed third-party ones included, so a plugin that passes them behaves like a
built-in. `check_registered(kind, name)` checks what the registry knows about a plugin.
"""

from pe_bench.testing.attacks import check_attack, tiny_context
from pe_bench.testing.common import check_registered
from pe_bench.testing.datasets import check_dataset
from pe_bench.testing.defenses import check_defense, tiny_data
from pe_bench.testing.encoders import check_encoder

__all__ = ["check_attack", "check_dataset", "check_defense", "check_encoder", "check_registered",
           "tiny_context", "tiny_data"]
