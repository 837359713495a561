"""Flows that start with Amazon and end in the OMS: package events become OMS documents
(outbound deliveries / item fulfillments), Amazon-side cancellations reject or reduce order lines,
and Amazon's inventory becomes the OMS's stock at the Amazon location."""
