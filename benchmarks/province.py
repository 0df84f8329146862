"""The benchmark at province scale: see benchlib.py (steps, figures) and README.md (results).

    .venv/bin/python benchmarks/province.py                      # throw-away embedded PostgreSQL
    .venv/bin/python benchmarks/province.py --url postgresql://postgres@localhost:5440/postgres
    .venv/bin/python benchmarks/province.py --generate-only      # just generate (or find) the landing area
"""

import sys

from benchlib import main

if __name__ == "__main__":
    sys.exit(main("province"))
