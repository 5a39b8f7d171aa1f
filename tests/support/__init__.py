"""What the tests share: harnesses, fixtures, the naive SPEC reference and paths.

Test modules import from here (`from tests.support.metrics import parse_exposition`),
never from each other. `tests` is a package, so pytest puts the repository root on
sys.path (rootdir-relative module names), whichever folder a test file sits in.
"""
from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent     # tests/
ROOT = TESTS.parent                                  # the repository
CORPUS = TESTS / "schemas" / "corpus"
