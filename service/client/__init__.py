"""The HTTP client of a Tapeline server and the CLI commands that use it."""
