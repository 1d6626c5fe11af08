"""Entry point: `python server.py [--transport http --port 8000] [--model PATH] ...` (see `--help`)."""

from mcp_llm.cli import main

if __name__ == "__main__":
    main()
