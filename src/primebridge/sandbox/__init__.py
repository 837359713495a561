"""Faithful, stateful local servers of Amazon Buy with Prime, SAP S/4HANA and NetSuite.

Used by ``primebridge demo``, by the tests and by merchants who want to try primebridge without
credentials. Each has an admin API under ``/_sandbox/`` to seed and inspect data and to set knobs.
"""
