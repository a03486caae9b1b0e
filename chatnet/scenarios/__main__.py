"""``python -m chatnet.scenarios``: the same as ``chatnet-scenarios``."""

from chatnet.scenarios.cli import main

raise SystemExit(main())
