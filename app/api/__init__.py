"""HTTP layer: thin endpoints that parse, call a service and shape the response."""
