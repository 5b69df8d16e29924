"""Aura dashboard: a real-time operations dashboard for an AI stack."""

__version__ = "0.1.0"
