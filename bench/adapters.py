"""Adapter and embedding benchmark from a checkout: `python bench/adapters.py --help`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_llm.bench_adapters import main

if __name__ == "__main__":
    main()
