"""Loading the notifier backends, checked in a fresh interpreter: apprise stays unimported."""

from __future__ import annotations

import subprocess
import sys


def test_loading_the_backends_does_not_import_apprise() -> None:
    code = (
        "import sys\n"
        "from vigild.alerting.notifiers import base\n"
        "base.backend('apprise'); base.backend('webhook')\n"
        "assert 'apprise' not in sys.modules, 'apprise imported at load time'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
