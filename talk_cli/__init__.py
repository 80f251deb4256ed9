"""talk_cli: distil text-attributed graphs with TaLK."""

__version__ = "0.1.0"
