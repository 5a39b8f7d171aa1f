"""Faust wiring for the live worker (thin shell over pulse.streams)."""
