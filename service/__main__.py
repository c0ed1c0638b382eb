"""`python -m service` is the `tapeline` command."""

from service.cli import app

app()
