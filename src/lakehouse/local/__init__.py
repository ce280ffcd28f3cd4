"""The laptop runtime: run the state machines and their tasks without AWS."""
