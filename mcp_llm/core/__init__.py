"""What the server does, with no MCP in it (tests/unit/test_layers.py checks): services, the request path, jobs,
registries, the store, quantization, load tests and variants. Imports point down only: engine, settings, schemas."""
