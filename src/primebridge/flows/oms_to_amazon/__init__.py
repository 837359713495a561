"""Flows that start in the OMS and end in Amazon: a sales order becomes a Buy with Prime order."""
