import sys

from stun_infra.cli import main

sys.exit(main())
