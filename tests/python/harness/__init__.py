"""Helpers for the end-to-end suite: processes, config, metrics, simulator, clients."""
