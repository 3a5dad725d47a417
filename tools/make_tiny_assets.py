"""Build (or find) the offline tiny assets and print where they are: ``python tools/make_tiny_assets.py [NAME ...]``.

The assets are also built on first use by any configuration naming ``tiny:<name>``; see ``alarm_pl.assets.tiny``.
"""

import sys

from alarm_pl.assets.tiny import TINY_ASSETS, ensure_tiny_asset

if __name__ == "__main__":
    for name in sys.argv[1:] or sorted(TINY_ASSETS):
        print(f"tiny:{name}\t{ensure_tiny_asset(name)}")
