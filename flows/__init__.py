"""Flows: orchestration of campaigns with Prefect; nothing is computed here."""
