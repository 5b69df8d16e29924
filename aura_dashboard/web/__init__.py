"""The HTTP side: routes, middleware and the static page."""
