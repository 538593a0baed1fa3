"""The Celery worker: its app, configuration and (thin) tasks."""
