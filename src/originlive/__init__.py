"""originlive: live commerce from the place of origin."""

__version__ = "0.1.0"
