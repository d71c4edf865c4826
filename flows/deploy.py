"""Scheduled campaigns: a Prefect deployment of the campaign flow, served from this workspace.

    python -m flows.deploy --params params.yaml --cron "0 2 * * *"      # or: campaign serve …

registers the deployment `campaign/<campaign name>` with the Prefect API (a `prefect server start` or Prefect
Cloud, from PREFECT_API_URL) and serves it: every scheduled or manually triggered run (`prefect deployment run
campaign/default`) runs the campaign here, resuming it, so a nightly schedule adds trials until the budget is
spent and afterwards only re-checks it. For a fleet, deploy the same flow to a work pool instead and start
`prefect worker start --pool <pool>` on each machine (see the README).
"""

from __future__ import annotations

import argparse

from prefect import serve

from flows.campaign import campaign
from hpo.config import load_params


def deployment(params_file: str, cron: str | None, name: str | None = None):  # noqa: ANN201 (prefect's type)
    """The campaign flow as a deployment: the params file as its parameter, on a cron schedule."""
    params = load_params(params_file)
    return campaign.to_deployment(
        name=name or params.campaign.name,
        cron=cron,
        parameters={"params_file": params_file},
        description=f"Campaign {params.campaign.name} from {params_file}",
        tags=["campaign", params.campaign.sampler],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the campaign flow as a scheduled Prefect deployment.")
    parser.add_argument("--params", default="params.yaml", help="campaign params file")
    parser.add_argument("--cron", default=None, help='cron schedule, e.g. "0 2 * * *"; none: run on demand')
    parser.add_argument("--name", default=None, help="deployment name (default: the campaign name)")
    args = parser.parse_args()
    serve(deployment(args.params, args.cron, args.name))


if __name__ == "__main__":
    main()
