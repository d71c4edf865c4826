"""The campaign library: everything the stages, the flow and the CLI share.

- `hpo.config` — a campaign's declaration (params.yaml → typed, frozen objects); `hpo.validate` checks what it
  points at (data, corpus, checkpoint, tasks) before anything is written.
- `hpo.search` — the search: the space, the Latin-hypercube initial design, the proposers, warm-start priors.
- `hpo.record` — the record: a campaign folder's layout, decision records and their locks, lineage, the Optuna
  study, DVC, and the `Campaign` object that keeps a campaign's bookkeeping behind one interface.
- `hpo.analysis` — reading records back: the trials table, compare, trace, the HTML report.
- `hpo.data`, `hpo.checkpoint`, `hpo.litgpt_cli`, `hpo.tinytopic` — task records, base-model checkpoints, litgpt
  run in-process, and the generator of the default TinyTopic task.
"""
