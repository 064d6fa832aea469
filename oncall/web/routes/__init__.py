"""One module of routes per area; each has `add_routes(app)`."""
