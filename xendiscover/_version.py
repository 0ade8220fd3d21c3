"""The version of xendiscover."""

__version__ = "0.1.0"
