"""design: the Latin-hypercube initial design of a campaign (`hpo.search.design`), written to `design.json`.

The points come from the design seed (derived from the campaign seed) and enter the study first, through
`study.enqueue_trial`, before any proposer is asked.
"""

from __future__ import annotations

import json
from typing import Any

from hpo.config import derive_seed, load_params
from hpo.layout import CampaignPaths, stage_args
from hpo.search.design import latin_hypercube


def design(paths: CampaignPaths) -> list[dict[str, Any]]:
    """Writes the campaign's design points to `design.json` and returns them."""
    params = load_params(paths.params)
    points = latin_hypercube(params.space, params.campaign.n_init, derive_seed(params.campaign.seed, "design"))
    paths.design.write_text(json.dumps(points, indent=2) + "\n")
    return points


def main() -> None:
    paths, _ = stage_args("Draw the campaign's Latin-hypercube initial design.", trial=False)
    print(json.dumps(design(paths)))


if __name__ == "__main__":
    main()
