"""primebridge: connects a merchant's OMS with Amazon's fulfillment network (Buy with Prime / MCF)."""

__version__ = "0.1.0"
