"""Posts: what a person writes once and Herald delivers everywhere."""
