"""The durable runtime: store, jobs with leases, retries, dead letters, audit, schedules."""
