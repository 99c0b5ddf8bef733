"""Data set readers, one file per layout; ``extract.datasets`` is the public entry.

Each reader takes a ``DatasetConfig`` and returns an ``extract.records.Dataset``; the
shared tail (label set, split file or seeded split, report counters) is ``finish.finish``.
"""
