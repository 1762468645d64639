import sys

from gpu_policy.cli import main

sys.exit(main())
