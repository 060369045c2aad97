"""Phase services: each takes a state and returns the next one."""
