"""The record of a campaign: its folder layout (`layout`), decision records and locks (`records`, `files`),
lineage (`lineage`), the Optuna study (`study`), DVC (`dvc`), and the `Campaign` bookkeeping object (`campaign`)."""
