"""Where this project reaches past a library's public API: one module per library (`litgpt`, `dvc` with dvc-data
and fsspec, `optuna`, `lm_eval`). Each module's note says what it touches, why no public API does it, and which
contract tests (tests/test_contracts*.py) fail first when an upgrade moves it. Nothing else in `hpo`, `stages` or
`flows` touches those libraries' private names, patches them or swaps their functions."""
