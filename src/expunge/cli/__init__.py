"""The ``expunge`` command line."""
