"""Load checks, run by ``make load``; not part of ``make test``."""
