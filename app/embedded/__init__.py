"""The embedded mode's own parts: a local broker that cannot tear and `serve`'s supervised worker."""
