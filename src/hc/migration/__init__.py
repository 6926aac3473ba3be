"""Migration between registries: the Go hc config schema, plans, and their execution by the engine."""
