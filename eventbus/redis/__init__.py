"""The Redis adapters: the only code that imports redis."""
