"""Feature attributions (`:explain`) and permutation importance of registered versions."""
