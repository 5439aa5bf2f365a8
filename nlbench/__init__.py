"""nlbench: a bench for non-local (global-context) neural-network blocks."""

__version__ = "0.1.0"
