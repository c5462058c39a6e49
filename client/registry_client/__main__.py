"""``python -m registry_client``: the same as the ``registry-client`` command."""

import sys

from .cli import main

sys.exit(main())
