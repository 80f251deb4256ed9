"""The version of talk_cli, in a module of its own so that any stage can name it without importing the package's entry points."""

__version__ = "0.1.0"
