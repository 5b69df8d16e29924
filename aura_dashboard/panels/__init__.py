"""Panels: the domain logic behind the streams (alerts, ...)."""
