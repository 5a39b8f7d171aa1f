"""Pipeline Pulse: real-time sales-pipeline analytics."""
__version__ = "0.1.0"
