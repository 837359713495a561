"""Clients for the systems primebridge talks to; each folder holds auth, errors and field mapping."""
