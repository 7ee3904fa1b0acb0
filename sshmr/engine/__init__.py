"""The engine: the scheduler (a pure state machine), the master loop that carries out its
actions through host sessions, result collection, the code bundle and the run's
configuration. ``sshmr.engine.launch`` is its entry point; ``ARCHITECTURE.md`` draws the
layers."""
