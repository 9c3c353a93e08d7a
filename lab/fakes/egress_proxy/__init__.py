"""Recording egress proxy: records and refuses every outbound attempt (see proxy.py)."""

from .proxy import EgressAttempt, EgressProxy

__all__ = ["EgressAttempt", "EgressProxy"]
