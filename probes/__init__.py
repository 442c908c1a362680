"""probes: the measurement library behind the claims (adapters, capture/intervene, statistics, figures)."""
__version__ = "0.1.0"
