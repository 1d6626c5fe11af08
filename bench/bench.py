"""Run the benchmark from a checkout: `python bench/bench.py --help` (the same as `mcp-llm bench`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_llm.bench import main

if __name__ == "__main__":
    main()
