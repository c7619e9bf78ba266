"""Makes the client package importable from the project's environment, as an installed
``wam-gym-client`` would be (``pip install ./clients/gymnasium``)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(ROOT, "clients", "gymnasium")
if CLIENT not in sys.path:
  sys.path.insert(0, CLIENT)
