"""The benchmark harness (``just bench``). Apart from the tests; asserts nothing about time."""
