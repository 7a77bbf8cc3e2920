"""Review: a person approves or rejects the drafts agents write before anything goes out."""
