"""Errors of the outcome-data sets: the bundled sample, the manifest, downloads and conversion.

    CascadeError                       (policies.errors)
    └── DataError                      an outcome data set could not be read, fetched, verified or converted
        ├── ManifestError              the manifest (or a lock file) is malformed; names the file and the entry
        ├── SourceUnreachable          the source URL cannot be reached (offline, refused, DNS, timeout)
        ├── DownloadFailed             the server answered an error, or the transfer kept breaking
        ├── DigestMismatch             what arrived is not the file the manifest names (SHA-256 differs)
        ├── DigestUnknown              no SHA-256 is recorded for a file and none was given
        └── ConversionError            a downloaded file is not in the format its converter reads

Every message names the set, the file or URL, and what to do. An unknown set name is a ``ConfigError``
(a bad option, like any other).
"""
from __future__ import annotations

from policies.errors import CascadeError


class DataError(CascadeError):
    """An outcome data set could not be read, fetched, verified or converted."""


class ManifestError(DataError):
    """The data manifest or a lock file is malformed."""


class SourceUnreachable(DataError):
    """The source URL cannot be reached: no network, connection refused, unknown host or timeout."""

    def __init__(self, message: str, *, url: str) -> None:
        self.url = url
        super().__init__(message)


class DownloadFailed(DataError):
    """The server answered with an error status, or the transfer broke more often than allowed."""

    def __init__(self, message: str, *, url: str, status_code: int | None = None) -> None:
        self.url = url
        self.status_code = status_code
        super().__init__(message)


class DigestMismatch(DataError):
    """The downloaded bytes do not have the SHA-256 the manifest (or lock file, or --sha256) names."""

    def __init__(self, message: str, *, url: str, expected: str, actual: str) -> None:
        self.url = url
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class DigestUnknown(DataError):
    """No SHA-256 is recorded for a file and none was given (``--sha256`` or ``--trust-first-download``)."""


class ConversionError(DataError):
    """A downloaded file is not in the format the set's converter reads."""
