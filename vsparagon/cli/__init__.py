"""The ``paragon`` command line."""
