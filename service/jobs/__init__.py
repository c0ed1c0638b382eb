"""The queue and its workers: claiming, leases and deadlines, the worker loop, maintenance jobs."""
