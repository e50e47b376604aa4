"""walrus-faults: the test suite's fault backends, registered like any third-party plugin.

The machinery lives in ``walrus.testing._faults`` (so that a backend author's tests can use it
too); this distribution only registers one ``faults-<inner>`` wrapper per built-in backend
(see ``../walrus_faults-1.0.dist-info/entry_points.txt``). The names are re-exported so that
``from walrus_faults import Machine, powered`` keeps working.
"""

from walrus.testing._faults import *  # noqa: F403
from walrus.testing._faults import __all__ as __all__
