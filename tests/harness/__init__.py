"""Test harness: a scripted local OpenAI-compatible provider (see :mod:`.fake_provider`)."""
