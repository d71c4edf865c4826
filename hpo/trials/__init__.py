"""Trial kinds (fine-tuning: train → merge → score) and the warm worker process that runs them."""
