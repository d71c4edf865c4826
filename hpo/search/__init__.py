"""The search: the space (`space`), the initial design (`design`), the proposers (`proposers`) and prior
observations from earlier campaigns (`warm_start`)."""
