"""Run the quantization benchmark from a checkout: `python bench/quantize.py --help`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_llm.quant_bench import main

if __name__ == "__main__":
    main()
