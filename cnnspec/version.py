"""The package's version (a core module: every stage may read it, none imports the facade)."""

__version__ = "0.1.0"
