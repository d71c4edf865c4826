"""The campaign library: everything the stages, the flow and the CLI share.

Its modules form layers, lowest first; a module imports only from its own layer or a lower one (docs/design.md#layers,
checked by tests/test_layering.py):

- foundation — `hpo.textfile`, `hpo.files` (record files, atomic writes, locks), `hpo.layout` (the folder layout
  under `campaigns/`), `hpo.internals` (where library internals are touched), `hpo.tinytopic`, `hpo.placement`;
- `hpo.config` — a campaign's declaration (params.yaml → typed, frozen objects), the space's dimensions;
- `hpo.search` — the Optuna study, the Latin-hypercube design, the proposers, pruning decisions, objectives;
- `hpo.record` — decision records, lineage, DVC, warm-start priors from earlier campaigns' records;
- compute — `hpo.data`, `hpo.checkpoint`, `hpo.tasks`, `hpo.cache`, `hpo.evaluation`, `hpo.generation`,
  `hpo.convert`, `hpo.export`, `hpo.validate` (what it points at is checked before anything is written), …;
- `hpo.campaign` — the `Campaign` object that keeps a campaign's bookkeeping behind one interface;
- `hpo.trials` — trial kinds, the live pruners, the warm worker;
- `hpo.analysis` — reading records back: the trials table, compare, trace, the HTML report.
"""
