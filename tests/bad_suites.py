"""The malformed suite files in tests/fixtures/suites/bad/ and what each error must name.

Each file starts with two comments:
    # expect-key: attacks[1].params.poison_rate     (empty: an error about the whole file)
    # expect-msg: less than or equal to 1           (a fragment of the message)
"""

from __future__ import annotations

import re
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "suites"
BAD_SUITES = sorted((FIXTURES / "bad").glob("*.yaml"))


def expectation(path: Path) -> tuple[str, str]:
    """(key path, message fragment) declared in a bad suite's header comments."""
    text = path.read_text(encoding="utf-8")
    key = re.search(r"^# expect-key:(.*)$", text, re.MULTILINE)
    msg = re.search(r"^# expect-msg:(.*)$", text, re.MULTILINE)
    assert key and msg, f"{path.name}: header comments # expect-key: / # expect-msg: missing"
    return key.group(1).strip(), msg.group(1).strip()
