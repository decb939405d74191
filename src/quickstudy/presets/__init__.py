"""Configurations that reproduce the papers' experiments."""
