"""Helpers shared by the tests: one home for paths, the raw flash rig and the
boot rig. Tests import them as `support.<module>` (tests/ is on sys.path
because tests/conftest.py lives there)."""
