"""What the parts of the server agree on without importing each other (see ``core.ports``)."""
