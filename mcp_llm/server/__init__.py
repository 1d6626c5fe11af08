"""The MCP surface: the only package that imports `mcp` (tests/unit/test_layers.py checks). Builds the MCPServer,
its tools, resources, prompts, tasks, HTTP routes and principals over mcp_llm.core."""
