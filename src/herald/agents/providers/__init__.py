"""What an agent calls to write a draft: a model behind an OpenAI-compatible endpoint,
or the built-in extractive digest. The shared types are in :mod:`.base`."""
