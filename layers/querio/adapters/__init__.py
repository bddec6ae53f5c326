"""Adapters: one module per storage technology, each implementing a port in ``querio.ports``."""
