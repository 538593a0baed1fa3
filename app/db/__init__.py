"""Database plumbing: declarative base, engine and session factories, migrations."""
