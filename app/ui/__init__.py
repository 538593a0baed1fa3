"""The browser dashboard at /ui: page shells, server-rendered data fragments, static files."""
