"""A task added outside the package, as a user would (tests/test_task_registry.py)."""
