"""The data-sanity rules live in marketdata.sanity (torch-free: the transformer applies them too)."""

from marketdata.sanity import MAX_GAP_DAYS, MAX_PRICE, REFUSED_JUMP, WARNED_JUMP, check_series

__all__ = ["MAX_GAP_DAYS", "MAX_PRICE", "REFUSED_JUMP", "WARNED_JUMP", "check_series"]
