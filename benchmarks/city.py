"""The benchmark at city scale: see benchlib.py (steps, figures) and README.md (results).

    .venv/bin/python benchmarks/city.py                      # throw-away embedded PostgreSQL
    .venv/bin/python benchmarks/city.py --url postgresql://postgres@localhost:5440/postgres
    .venv/bin/python benchmarks/city.py --generate-only      # just generate (or find) the landing area
"""

import sys

from benchlib import main

if __name__ == "__main__":
    sys.exit(main("city"))
