"""Stages: each module is one step that computes, with a pure typed function and a thin CLI."""
