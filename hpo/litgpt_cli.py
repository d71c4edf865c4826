"""Run a litgpt command (`finetune_lora`, `finetune_full`, …) in this process from a config YAML.

litgpt's scripts are meant to be run as `litgpt <command> --config <file>`: their `setup()` re-parses `sys.argv`
to save `hyperparameters.yaml`. Calling the CLI entry point with that exact argv keeps litgpt's own behaviour
(the saved hyperparameters replay the run with `litgpt <command> --config`) without paying for a second Python
process and its imports.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def run_litgpt(command: str, config: dict[str, Any], config_file: Path) -> None:
    """Writes `config` to `config_file` and runs `litgpt <command> --config <config_file>` in-process.

    Args:
        command: a litgpt subcommand, such as "finetune_lora".
        config: the subcommand's arguments, as in a litgpt config YAML.
        config_file: where to write the YAML (kept as a record of the run).
    """
    from litgpt.__main__ import main as litgpt_main

    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = sys.argv
    sys.argv = ["litgpt", command, "--config", str(config_file)]
    try:
        litgpt_main()
    finally:
        sys.argv = argv
