"""Development helpers, not the library's core: a local S3 endpoint for the demo and the tests."""

from __future__ import annotations
