"""The HTTP edge: handlers translate between HTTP and the service, nothing more."""
