"""The `pulse` command line (SPEC 7): the parser and `pulse report` (main) and the shells of
the other subcommands; `python -m pulse.cli` runs it."""
from .main import main

__all__ = ["main"]
