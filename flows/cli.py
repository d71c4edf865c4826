"""The `campaign` command.

campaign run [--params params.yaml]        run or resume the campaign a params file declares
campaign status [NAME]                     one line per trial: state, score, hyperparameters
campaign trace NAME TRIAL                  a trial's lineage, with its artefacts checked against dvc.lock
campaign compare A B [C …] [--html F]      summary table and what differs; NAME@REV reads a git revision
campaign report NAME [--html F]            the campaign's self-contained HTML report
campaign export NAME TRIAL [--to DIR]      a trial's merged checkpoint (merged on demand), and how to load it
  [--format litgpt|hf]                     hf: a Hugging Face transformers folder in DIR (--to required)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hpo.config import ParamsError, load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Reproducible LLM hyperparameter campaigns.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command()
def run(
    params: Annotated[Path, typer.Option("--params", "-p", help="campaign params file")] = Path("params.yaml"),
) -> None:
    """Run (or resume) the campaign declared in a params file."""
    from hpo.record.records import resolve_model_trial
    from hpo.validate import InputError, check_scheduler, validate_inputs

    try:  # bad input stops here, before anything is written
        declared = resolve_model_trial(load_params(params))
        validate_inputs(declared)
        if declared.campaign.scheduler:
            check_scheduler(declared.campaign.scheduler)
    except (ParamsError, InputError) as err:
        raise _fail(str(err)) from None
    from flows.campaign import CampaignInterrupted, CampaignStopped, run_campaign

    try:
        run_campaign(declared, str(params))  # parsed and validated once, above
    except CampaignStopped as err:
        raise _fail(str(err)) from None
    except CampaignInterrupted as err:  # Ctrl-C: 130, SIGTERM: 143, as a shell reports a process they ended
        typer.echo(str(err), err=True)
        raise typer.Exit(128 + err.signum) from None


@app.command()
def status(name: Annotated[str, typer.Argument(help="campaign name under campaigns/")] = "default") -> None:
    """Show a campaign's trials."""
    from hpo.analysis.source import CampaignSource
    from hpo.analysis.table import trials_table
    from hpo.layout import CampaignPaths

    paths = CampaignPaths(name)
    if not paths.params.is_file():
        raise _fail(f"no campaign {name!r} (expected {paths.params})")
    table = trials_table(CampaignSource(name))
    if table.empty:
        typer.echo(f"campaign {name}: no trials yet")
        return
    shown = table.drop(columns=["baseline"])
    typer.echo(shown.astype(object).where(shown.notna(), "").to_string(index=False))


@app.command()
def trace(
    name: Annotated[str, typer.Argument(help="campaign name")],
    trial: Annotated[str, typer.Argument(help="trial id, e.g. t003 or baseline")],
) -> None:
    """Print a trial's lineage and check its artefacts against the hashes DVC recorded."""
    from hpo.analysis.trace import check, manifest
    from hpo.layout import CampaignPaths

    paths = CampaignPaths(name)
    if not paths.params.is_file():
        raise _fail(f"no campaign {name!r} (expected {paths.params})")
    try:
        record = manifest(paths, trial)
    except KeyError as err:
        raise _fail(str(err.args[0])) from None
    typer.echo(json.dumps(record, indent=2))
    if record["state"] in ("running", "interrupted"):  # nothing recorded by DVC yet to check
        typer.echo(f"{trial} is {record['state']}: its artefacts are recorded when it finishes")
        return
    states = check(paths, trial)
    bad = {k: v for k, v in states.items() if v != "ok"}
    for artefact, state in states.items():
        typer.echo(f"{artefact:<14} {state:<13} {record['hashes'][artefact]['path']}")
    if bad:
        raise _fail(f"{trial}: " + ", ".join(f"{k} {v}" for k, v in bad.items()))


@app.command()
def compare(
    campaigns: Annotated[list[str], typer.Argument(help="campaign names; NAME@REV for a git revision")],
    html: Annotated[Path | None, typer.Option("--html", help="also write an HTML comparison here")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="also write the summary table as CSV")] = None,
) -> None:
    """Compare campaigns: best, quantiles, counts, costs, and every setting that differs."""
    from hpo.analysis.compare import compare as compare_campaigns
    from hpo.analysis.compare import not_comparable

    try:
        summary, diff = compare_campaigns(campaigns)
    except FileNotFoundError as err:
        raise _fail(str(err)) from None
    for warning in not_comparable(diff):
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(summary.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    typer.echo("\nwhat differs:" if not diff.empty else "\nwhat differs: nothing")
    if not diff.empty:
        typer.echo(diff.to_string(index=False))
    if csv:
        summary.to_csv(csv, index=False)
    if html:
        from hpo.analysis.html_report import render

        html.write_text(render(campaigns))
        typer.echo(f"\nwrote {html}")


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="campaign name; NAME@REV for a git revision")] = "default",
    html: Annotated[Path | None, typer.Option("--html", help="where to write it")] = None,
) -> None:
    """Write a campaign's self-contained HTML report (history, parallel coordinates, importance, cost, lineage)."""
    from hpo.analysis.html_report import render
    from hpo.analysis.source import CampaignSource

    source = CampaignSource.parse(name)
    if source.read(f"{source.dir}/params.yaml") is None:
        raise _fail(f"no campaign {source.label}")
    out = html or Path(source.dir) / "report" / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render([name]))
    typer.echo(f"wrote {out}")


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="campaign name")],
    trial: Annotated[str, typer.Argument(help="trial id, e.g. t003 or baseline")],
    to: Annotated[Path | None, typer.Option("--to", help="also copy the checkpoint into this new folder")] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", help="litgpt (the merged litgpt checkpoint) or hf (a transformers folder in --to)"),
    ] = "litgpt",
) -> None:
    """Merge a trial's adapter into its base model (a DVC stage, rebuilt by `dvc repro`) and say how to load it;
    with `--format hf`, also convert the merged checkpoint into a Hugging Face transformers folder."""
    from hpo.campaign import merge_trial
    from hpo.checkpoint import copy_checkpoint, loading_instructions, resolve_checkpoint
    from hpo.export import ExportError, export_hf, hf_loading_instructions
    from hpo.layout import CampaignPaths
    from hpo.record.records import check_mergeable

    if fmt not in ("litgpt", "hf"):
        raise _fail(f"campaign export --format: {fmt!r} is not a format; expected litgpt or hf")
    if fmt == "hf" and to is None:
        raise _fail("campaign export --format hf needs --to DIR: the new folder to write the Hugging Face model to")
    paths = CampaignPaths(name)
    try:  # bad input stops here, before anything is written
        check_mergeable(paths, trial, "campaign export")
    except ParamsError as err:
        raise _fail(str(err)) from None
    if to is not None and to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise _fail(f"campaign export --to: {to} exists and is not an empty folder; expected a new folder")
    folder = merge_trial(paths, trial, "export")
    if fmt == "hf":
        assert to is not None
        try:
            export_hf(folder, to, base_dir=resolve_checkpoint(paths.base_model, paths.root))
        except ExportError as err:
            raise _fail(f"campaign export --format hf: {err}") from None
        typer.echo(hf_loading_instructions(to, folder))
        return
    if to is not None:
        folder = copy_checkpoint(folder, to)
    typer.echo(loading_instructions(folder, f"{name} {trial}"))


def main() -> None:
    app(prog_name="campaign")


if __name__ == "__main__":
    main()
