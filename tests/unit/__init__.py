"""Test package: gives modules here names distinct from tests/integration/."""
