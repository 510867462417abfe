"""The gateway: a local HTTP/1.1 proxy that gives services ``NAME.localhost`` names."""
