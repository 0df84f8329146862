import sys

from corridor.demo.generator import main

sys.exit(main())
