"""`judge models`: list (as a table or JSON) and build the embedded default models."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from judge.cli.app import models_app


@models_app.callback()
def models_list(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list for scripts: name, "
                                           "status, path, size_bytes, description, parent.")] = False,
) -> None:
    """List the embedded default models: built or missing, size and folder."""
    if ctx.invoked_subcommand is not None:
        return
    from judge.models import cache_dir, list_models

    if json_out:
        import json

        rows = [{"name": m.name, "status": "built" if m.built else "missing", "path": m.path,
                 "size_bytes": m.size_bytes, "description": m.description, "parent": m.parent}
                for m in list_models()]
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"embedded models (cache: {cache_dir()})", title_justify="left")
    for col in ("name", "status", "size"):
        table.add_column(col, no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("description", overflow="fold")
    for m in list_models():
        size = f"{m.size_bytes / 1e6:.0f} MB" if m.size_bytes is not None else "-"
        status = "[green]built[/green]" if m.built else "[yellow]missing[/yellow]"
        table.add_row(m.name, status, size, m.path, m.description)
    Console().print(table)


@models_app.command("build")
def models_build(
    name: Annotated[Optional[str], typer.Argument(help="Embedded model to build (all if omitted).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if already built.")] = False,
) -> None:
    """Build embedded models into the cache (offline, from the GGUF shipped in a PyPI package)."""
    from judge.models import EMBEDDED, build_model, is_built, model_dir

    for n in [name] if name is not None else list(EMBEDDED):
        if not force and n in EMBEDDED and is_built(model_dir(n)):
            print(f"{n}: already built at {model_dir(n)}")
            continue
        build_model(n, force=force)  # reports each finished build on stderr
