"""MCP tools, one module per family; each module lists its tool functions in TOOLS (mcp_llm.server.app gathers
them). Tools never import each other: what several share lives in `common` (tests/unit/test_layers.py checks). This
package imports none of its modules, so server modules (journal, tasks) can use `common` without a cycle."""
