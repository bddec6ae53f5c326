"""Shared fixtures live in ``tests/fixtures/*``; each module owns one concern and cleans up."""

import os

# Nothing downloads at run time or in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.pdfs",
    "tests.fixtures.service",
    "tests.fixtures.events",
    "tests.fixtures.aws_events",
    "tests.fixtures.redis",
    "tests.fixtures.opensearch_recorder",
]
