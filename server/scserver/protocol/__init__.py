"""Sans-IO NATS wire protocol: the parser and frame encoders, no sockets, no asyncio."""
