"""The ``authward`` command line."""
