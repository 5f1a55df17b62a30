"""``python -m pipeline_hub_dev up|down|status|env``: the ``services`` commands without the runtime CLI."""

from .cli import app

app(prog_name="pipeline-hub services")
