"""``python -m homeport``."""

from homeport.cli import console

console()
