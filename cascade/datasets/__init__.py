"""Outcome data for replay, training and calibration: the sample shipped in the package and the full public sets.

    sample.py        where the bundled sample is; the default data of ``cascade replay``
    build_sample.py  python -m cascade.datasets.build_sample --from ../shared/data (same rows, same bytes)
    manifest.py      manifest.json: the full sets, their pinned files and SHA-256s; the lock file
    fetch.py         cascade data download: verified, resumable downloads, then conversion
    convert.py       each publisher's files -> the outcome format (outcome_format.py writes it)
    cli.py           cascade data list | download
    errors.py        DataError and its subclasses (under CascadeError)

Importing this package imports nothing heavy (pyarrow and httpx load in the functions that use them).
"""
