"""The run as a domain object: persistence and events, submission, the pipeline, results."""
