"""The web UI's pages: server-rendered HTML (aiohttp-jinja2, autoescaped), each action a
plain form that htmx enhances. `base` holds what every page shares."""
