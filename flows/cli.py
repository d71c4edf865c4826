"""The `campaign` command: run a campaign, see its status.

campaign run [--params params.yaml]     run or resume the campaign a params file declares
campaign status [NAME]                  one line per trial: state, score, hyperparameters
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.config import ParamsError, load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reproducible LLM hyperparameter campaigns.")


@app.command()
def run(
    params: Annotated[Path, typer.Option("--params", "-p", help="campaign params file")] = Path("params.yaml"),
) -> None:
    """Run (or resume) the campaign declared in a params file."""
    try:
        load_params(params)  # bad input stops here, before anything is written
    except ParamsError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    from flows.campaign import campaign

    campaign(str(params))


@app.command()
def status(name: Annotated[str, typer.Argument(help="campaign name under campaigns/")] = "default") -> None:
    """Show a campaign's trials."""
    from stages.layout import CampaignPaths
    from stages.report import collect

    paths = CampaignPaths(name)
    if not paths.params.is_file():
        typer.echo(f"error: no campaign {name!r} (expected {paths.params})", err=True)
        raise typer.Exit(2)
    table = collect(paths)
    if table.empty:
        typer.echo(f"campaign {name}: no trials yet")
        return
    with_pd = table.drop(columns=["baseline"]).fillna("")
    typer.echo(with_pd.to_string(index=False))


def main() -> None:
    app(prog_name="campaign")


if __name__ == "__main__":
    main()
