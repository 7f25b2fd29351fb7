"""Mail: templates rendered by a pure function, the outbox, and transports chosen by name."""
