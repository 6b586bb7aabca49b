"""pe-bench: a benchmark of data-poisoning attacks on contrastive encoders and their defenses.

Importing this package is cheap (no torch, no Ray): the CLI lists plugins and validates suites
before any heavy dependency loads.
"""

__version__ = "0.1.0"

from pe_bench import _moved

_moved.install()  # 0.1's module paths keep importing, with a DeprecationWarning, until 0.2
