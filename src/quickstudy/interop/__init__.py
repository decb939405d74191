"""Bridges to other libraries: Gymnasium (both directions)."""
