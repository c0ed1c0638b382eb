"""Everything between a committed change and a browser: the listener, the hub, the SSE streams."""
