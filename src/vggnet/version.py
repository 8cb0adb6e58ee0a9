"""The package version, in one place (the package, the service and the wheel read it)."""

__version__ = "0.1.0"
