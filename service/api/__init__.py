"""HTTP handlers: thin wrappers that authenticate, parse, call the domain, and serialize."""
