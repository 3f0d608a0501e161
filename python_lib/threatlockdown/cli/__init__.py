"""The ``tld`` command line: one module per sub-command."""
