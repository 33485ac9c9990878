"""`python -m chelian` is the `chelian` command."""

from chelian.cli.main import app

app(prog_name="chelian")
