"""Collectors: one module each, `async def sample()` returning plain data."""
