"""Who is calling: API keys with a project and scopes, per-key limits, local-server protection."""
